-- v3 (breaking): full_name becomes name
ALTER TABLE customers RENAME COLUMN full_name TO name;
