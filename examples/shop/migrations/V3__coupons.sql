-- v2 (expand): a new table
CREATE TABLE coupons (
  code VARCHAR(32) NOT NULL PRIMARY KEY,
  percent_off TINYINT UNSIGNED NOT NULL,
  valid_until DATE NULL
) ENGINE=InnoDB;
