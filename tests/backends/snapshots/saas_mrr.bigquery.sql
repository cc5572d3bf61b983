-- source spend, query 1
SELECT
  `__period`,
  COALESCE(SUM(IF(`__m0`, `__v0`, NULL)), 0) AS `__p0`
FROM (
  SELECT
    (
      CAST(EXTRACT(YEAR FROM `month`) AS INT64) * 12 + CAST(EXTRACT(MONTH FROM `month`) AS INT64) - 1
    ) AS `__period`,
    (
      `kind` IN ('marketing', 'sales')
    ) AS `__m0`,
    `amount` AS `__v0`
  FROM `spend`
) AS `__rows`
GROUP BY
  `__period`;

-- source subscriptions, query 1
SELECT
  `__period`,
  `__d0` AS `plan`,
  COALESCE(SUM(`__v0`), 0) AS `__p0`,
  COALESCE(SUM(CAST(`__v1` AS INT64)), 0) AS `__p1`
FROM (
  SELECT
    (
      CAST(EXTRACT(YEAR FROM `month`) AS INT64) * 12 + CAST(EXTRACT(MONTH FROM `month`) AS INT64) - 1
    ) AS `__period`,
    `plan` AS `__d0`,
    IF(
      `month` = MAX(`month`) OVER (
        PARTITION BY (
          CAST(EXTRACT(YEAR FROM `month`) AS INT64) * 12 + CAST(EXTRACT(MONTH FROM `month`) AS INT64) - 1
        )
      ),
      `mrr`,
      NULL
    ) AS `__v0`,
    IF(
      `month` = MAX(`month`) OVER (
        PARTITION BY (
          CAST(EXTRACT(YEAR FROM `month`) AS INT64) * 12 + CAST(EXTRACT(MONTH FROM `month`) AS INT64) - 1
        )
      ),
      (
        `mrr` > 0
      ),
      NULL
    ) AS `__v1`,
    (
      `mrr` > 0
    ) AS `__m0`
  FROM `subscriptions`
) AS `__rows`
GROUP BY
  `__period`,
  `__d0`;

-- source subscriptions, query 2
WITH `__kept` AS (
  SELECT
    (
      CAST(EXTRACT(YEAR FROM `month`) AS INT64) * 12 + CAST(EXTRACT(MONTH FROM `month`) AS INT64) - 1
    ) AS `__period`,
    `plan` AS `plan`,
    `account_id` AS `__value`,
    `month` AS `__time`
  FROM `subscriptions`
  WHERE
    (
      `mrr` > 0
    )
), `__customers` AS (
  SELECT
    *
  FROM `__kept`
  WHERE
    NOT `__value` IS NULL
), `__present` AS (
  SELECT
    `__period`,
    `plan`,
    `__value`,
    1 AS `__hit`
  FROM `__customers`
  GROUP BY
    `__period`,
    `plan`,
    `__value`
), `__first` AS (
  SELECT
    `__value`,
    MIN(`__period`) AS `__first`
  FROM `__customers`
  GROUP BY
    `__value`
)
SELECT
  `p`.`__period` AS `__period`,
  `p`.`plan` AS `plan`,
  COUNT(*) AS `__value`
FROM `__present` AS `p`
JOIN `__first` AS `f`
  ON `p`.`__value` = `f`.`__value`
WHERE
  `p`.`__period` = `f`.`__first`
GROUP BY
  `p`.`__period`,
  `p`.`plan`;

-- source subscriptions, query 3
WITH `__kept` AS (
  SELECT
    (
      CAST(EXTRACT(YEAR FROM `month`) AS INT64) * 12 + CAST(EXTRACT(MONTH FROM `month`) AS INT64) - 1
    ) AS `__period`,
    `plan` AS `plan`,
    `account_id` AS `__value`,
    `month` AS `__time`
  FROM `subscriptions`
  WHERE
    (
      `mrr` > 0
    )
), `__customers` AS (
  SELECT
    *
  FROM `__kept`
  WHERE
    NOT `__value` IS NULL
), `__present` AS (
  SELECT
    `__period`,
    `plan`,
    `__value`,
    1 AS `__hit`
  FROM `__customers`
  GROUP BY
    `__period`,
    `plan`,
    `__value`
)
SELECT
  `a`.`__period` + 1 AS `__period`,
  `a`.`plan` AS `plan`,
  COUNT(*) AS `__value`
FROM `__present` AS `a`
LEFT JOIN `__present` AS `b`
  ON `b`.`__period` = `a`.`__period` + 1
  AND `a`.`plan` IS NOT DISTINCT FROM `b`.`plan`
  AND `b`.`__value` = `a`.`__value`
WHERE
  `b`.`__hit` IS NULL
GROUP BY
  `a`.`__period` + 1,
  `a`.`plan`;
