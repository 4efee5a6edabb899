-- Every audit record carries a MAC (HMAC-SHA256 under a key derived from the master key)
-- over its canonical bytes and the previous record's MAC. Records written before this
-- migration keep NULL; the store appends an `audit.keyed` record in the same transaction,
-- from which MACs apply.
ALTER TABLE audit ADD COLUMN mac TEXT;
