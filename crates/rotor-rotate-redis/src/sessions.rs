//! Reading `CLIENT LIST`: which sessions a user has, and which of them survived an eviction.

/// The client ids of `user`'s sessions in a `CLIENT LIST` reply (one client per line,
/// space-separated `key=value` fields).
pub(crate) fn ids_of(list: &str, user: &str) -> Vec<u64> {
    list.lines()
        .filter_map(|line| {
            let mut id = None;
            let mut theirs = false;
            for field in line.split(' ') {
                match field.split_once('=') {
                    Some(("id", v)) => id = v.parse::<u64>().ok(),
                    Some(("user", u)) => theirs = u == user,
                    _ => {}
                }
            }
            id.filter(|_| theirs)
        })
        .collect()
}

/// How many of the sessions seen `before` are still in `after`.
pub(crate) fn surviving(before: &[u64], after: &[u64]) -> u64 {
    let n = before.iter().filter(|id| after.contains(id)).count();
    u64::try_from(n).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn picks_the_users_sessions() {
        let list = "id=3 addr=127.0.0.1:5 laddr=127.0.0.1:6379 fd=8 name= age=1 user=app resp=2\n\
                    id=4 addr=127.0.0.1:6 fd=9 name= user=default resp=2\n\
                    id=9 addr=127.0.0.1:7 fd=10 name= user=app-two resp=2\n\
                    id=12 addr=127.0.0.1:8 fd=11 name= user=app resp=2\n";
        assert_eq!(ids_of(list, "app"), vec![3, 12]);
        assert_eq!(surviving(&[3, 12], &[12, 40]), 1);
        assert_eq!(surviving(&[3, 12], &[]), 0);
    }
}
