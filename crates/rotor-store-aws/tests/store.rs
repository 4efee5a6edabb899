//! The shared store contract (`rotor_test_support::store_contract`) for the AWS store on a
//! real moto server with a SQLite ledger, and the migrate cases into and out of it. What
//! only AWS has (stage labels as boto3 sees them, outages, drift, metadata) is in
//! `moto.rs` and `metadata.rs`.

mod common;

mod contract {
    use super::common::Aws;
    rotor_test_support::store_contract_tests!(Aws::start());
}

mod aws_to_aws {
    use super::common::Aws;
    rotor_test_support::store_migrate_tests!(Aws::start(), Aws::start());
}
