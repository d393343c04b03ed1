-- v2 (expand): a column with a default; v1's code never names it and keeps working
ALTER TABLE orders ADD COLUMN channel VARCHAR(16) NOT NULL DEFAULT 'web';
