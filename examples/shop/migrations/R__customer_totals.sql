-- re-applied whenever it changes (and after every rollback)
CREATE OR REPLACE VIEW customer_totals AS
  SELECT c.id AS customer_id, c.email, COUNT(o.id) AS orders, COALESCE(SUM(o.total), 0) AS spent
  FROM customers c LEFT JOIN orders o ON o.customer_id = c.id
  GROUP BY c.id, c.email;
