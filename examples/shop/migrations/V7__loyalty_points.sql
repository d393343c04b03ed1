-- v3 (expand): customers collect points; undoing this drops data written since
ALTER TABLE customers ADD COLUMN loyalty_points INT UNSIGNED NOT NULL DEFAULT 0;
