-- v3 (contract): the phone column goes; v2's code still reads it
ALTER TABLE customers DROP COLUMN phone;
