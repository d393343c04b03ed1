DROP TRIGGER orders_total_not_negative;
DROP TABLE orders;
