use super::*;

fn log(n: u64) -> Vec<AuditRecord> {
    let mut out: Vec<AuditRecord> = Vec::new();
    for seq in 1..=n {
        let prev = out.last().map_or(GENESIS.to_owned(), |r| r.hash.clone());
        let ev = AuditEvent::new("alice@host", "secret.put")
            .secret(&SecretName::new("db").expect("valid"))
            .reason(Some(&format!("r{seq}")));
        out.push(AuditRecord::chain(
            seq,
            Timestamp::from_second(seq as i64).expect("valid"),
            ev,
            &prev,
        ));
    }
    out
}

#[test]
fn intact_chain_verifies() {
    assert_eq!(verify_chain(&log(5)), Ok(5));
    assert_eq!(verify_chain(&[]), Ok(0));
}

#[test]
fn detects_edit_delete_insert_reorder() {
    let mut edited = log(5);
    edited[2].event.reason = Some("changed".into());
    assert_eq!(verify_chain(&edited).expect_err("edit").seq, 3);

    let mut deleted = log(5);
    deleted.remove(1);
    let e = verify_chain(&deleted).expect_err("delete");
    assert_eq!((e.seq, e.position), (3, 2));

    let mut inserted = log(5);
    let extra = inserted[1].clone();
    inserted.insert(2, extra);
    assert_eq!(verify_chain(&inserted).expect_err("insert").position, 3);

    let mut reordered = log(5);
    reordered.swap(1, 3);
    assert_eq!(verify_chain(&reordered).expect_err("reorder").position, 2);

    // A head kept elsewhere catches what the chain alone cannot.
    let full = log(5);
    let head = Head::of(&full).expect("head");
    assert_eq!(Head::parse(&head.to_string()), Ok(head.clone()));
    assert_eq!(check_head(&full, &head), Ok(0));
    assert_eq!(
        check_head(&full[..4], &head),
        Err(HeadError::Truncated {
            last: 4,
            anchored: 5
        })
    );
    assert_eq!(
        check_head(&[], &head),
        Err(HeadError::Truncated {
            last: 0,
            anchored: 5
        })
    );
    let mut rebuilt = full.clone();
    rebuilt[4].event.reason = Some("forged".into());
    rebuilt[4].hash = rebuilt[4].computed_hash();
    assert!(verify_chain(&rebuilt).is_ok(), "the chain alone misses it");
    assert_eq!(
        check_head(&rebuilt, &head),
        Err(HeadError::Rebuilt { seq: 5 })
    );
    let older = Head::of(&full[..3]).expect("head");
    assert_eq!(
        check_head(&full, &older),
        Ok(2),
        "two records after the anchor"
    );

    // Rehashing an edited record still breaks the next record's link.
    let mut rehashed = log(5);
    rehashed[1].event.actor = "mallory".into();
    rehashed[1].hash = rehashed[1].computed_hash();
    assert_eq!(verify_chain(&rehashed).expect_err("rehash").seq, 3);
}

/// A log of `n` records whose MACs start at `keyed_from` (records before it are legacy).
fn keyed_log(n: u64, keyed_from: u64, key: &rotor_seal::AuditKey) -> Vec<AuditRecord> {
    let mut out: Vec<AuditRecord> = Vec::new();
    for seq in 1..=n {
        let action = match seq {
            1 => INIT,
            s if s == keyed_from => KEYED,
            _ => "secret.put",
        };
        let ev = AuditEvent::new("alice@host", action).reason(Some(&format!("r{seq}")));
        let time = Timestamp::from_second(seq as i64).expect("valid");
        let prev = out.last().map(|r| (r.hash.as_str(), r.mac.as_deref()));
        let rec = if seq >= keyed_from {
            AuditRecord::chain_keyed(seq, time, ev, prev, |d| key.tag(d))
        } else {
            AuditRecord::chain(seq, time, ev, prev.map_or(GENESIS, |p| p.0))
        };
        out.push(rec);
    }
    out
}

#[test]
fn macs_verify_only_under_the_key() {
    let master = rotor_seal::MasterKey::generate().expect("key");
    let key = rotor_seal::AuditKey::for_records(&master);
    let check = |d: &[u8], t: &str| key.verify(d, t);
    let full = keyed_log(6, 1, &key);
    assert_eq!(
        verify_keyed(&full, check),
        Ok(Keyed {
            records: 6,
            keyed_from: Some(1)
        })
    );
    let other = rotor_seal::AuditKey::for_records(&rotor_seal::MasterKey::generate().expect("key"));
    assert_eq!(
        verify_keyed(&full, |d, t| other.verify(d, t))
            .expect_err("other key")
            .seq,
        6
    );

    // A forged, correctly chained append: the chain holds, the MAC does not.
    let mut appended = full.clone();
    let last = appended.last().expect("last").clone();
    appended.push(AuditRecord::chain(
        7,
        last.time,
        AuditEvent::new("mallory", "secret.put"),
        &last.hash,
    ));
    assert!(verify_chain(&appended).is_ok());
    assert_eq!(verify_keyed(&appended, check).expect_err("append").seq, 7);
    appended[6].mac = full[5].mac.clone();
    assert_eq!(
        verify_keyed(&appended, check).expect_err("copied mac").seq,
        7
    );

    // Rewritten from #3 with the chain recomputed (MACs dropped or copied): #3 is named.
    let mut rebuilt = full.clone();
    rebuilt[2].event.reason = Some("forged".into());
    for i in 2..rebuilt.len() {
        let prev = rebuilt[i - 1].hash.clone();
        let mac = rebuilt[i].mac.clone();
        rebuilt[i] = AuditRecord::chain(
            rebuilt[i].seq,
            rebuilt[i].time,
            rebuilt[i].event.clone(),
            &prev,
        );
        rebuilt[i].mac = mac;
    }
    assert!(verify_chain(&rebuilt).is_ok());
    assert_eq!(verify_keyed(&rebuilt, check).expect_err("rebuilt").seq, 3);
}

#[test]
fn legacy_records_are_bound_by_the_keyed_one() {
    let master = rotor_seal::MasterKey::generate().expect("key");
    let key = rotor_seal::AuditKey::for_records(&master);
    let check = |d: &[u8], t: &str| key.verify(d, t);
    let migrated = keyed_log(8, 5, &key);
    assert_eq!(
        verify_keyed(&migrated, check),
        Ok(Keyed {
            records: 8,
            keyed_from: Some(5)
        })
    );
    // An old store that was never keyed under this key does not pass.
    let legacy = keyed_log(4, 99, &key);
    assert_eq!(verify_keyed(&legacy, check).expect_err("unkeyed").seq, 4);
    assert_eq!(verify_keyed(&[], check).map(|k| k.records), Ok(0));

    // Rewriting a legacy record and re-chaining breaks the keyed record's MAC.
    let mut rewritten = migrated.clone();
    rewritten[1].event.actor = "mallory".into();
    for i in 1..rewritten.len() {
        let prev = rewritten[i - 1].hash.clone();
        let mac = rewritten[i].mac.clone();
        rewritten[i] = AuditRecord::chain(
            rewritten[i].seq,
            rewritten[i].time,
            rewritten[i].event.clone(),
            &prev,
        );
        rewritten[i].mac = mac;
    }
    assert!(verify_chain(&rewritten).is_ok());
    assert!(verify_keyed(&rewritten, check).is_err());

    // Stripping the MACs of new records (passing as an old store) fails.
    let mut stripped = migrated.clone();
    stripped[7].mac = None;
    let e = verify_keyed(&stripped, check).expect_err("stripped");
    assert_eq!(e.seq, 8);
    assert!(e.why.contains("no MAC"), "{}", e.why);
    let mut all_stripped = migrated;
    for r in &mut all_stripped {
        r.mac = None;
    }
    assert_eq!(
        verify_keyed(&all_stripped, check)
            .expect_err("all stripped")
            .seq,
        8
    );
}
