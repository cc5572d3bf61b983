-- source orders, query 1
SELECT
  "__period",
  "__d0" AS "channel",
  COALESCE(SUM("__v0") FILTER(WHERE
    "__m0"), 0) AS "__p0",
  COALESCE(SUM("__v1") FILTER(WHERE
    "__m0"), 0) AS "__p1",
  COUNT(*) FILTER(WHERE
    "__m0") AS "__p2",
  COUNT(DISTINCT "__v2") FILTER(WHERE
    "__m0") AS "__p3"
FROM (
  SELECT
    (
      CAST(EXTRACT(YEAR FROM "order_date") AS Nullable(Int32)) * 12 + CAST(EXTRACT(MONTH FROM "order_date") AS Nullable(Int32)) - 1
    ) AS "__period",
    "channel" AS "__d0",
    (
      "status" = 'paid'
    ) AS "__m0",
    "amount" AS "__v0",
    "cost" AS "__v1",
    "customer_id" AS "__v2"
  FROM "orders"
) AS "__rows"
GROUP BY
  "__period",
  "__d0";

-- source orders, query 2
WITH "__kept" AS (
  SELECT
    (
      CAST(EXTRACT(YEAR FROM "order_date") AS Nullable(Int32)) * 12 + CAST(EXTRACT(MONTH FROM "order_date") AS Nullable(Int32)) - 1
    ) AS "__period",
    "channel" AS "channel",
    "customer_id" AS "__value",
    "order_date" AS "__time"
  FROM "orders"
  WHERE
    (
      "status" = 'paid'
    )
), "__customers" AS (
  SELECT
    *
  FROM "__kept"
  WHERE
    NOT (
      "__value" IS NULL
    )
), "__present" AS (
  SELECT
    "__period",
    "channel",
    "__value",
    1 AS "__hit"
  FROM "__customers"
  GROUP BY
    "__period",
    "channel",
    "__value"
), "__first" AS (
  SELECT
    "__value",
    MIN("__period") AS "__first"
  FROM "__customers"
  GROUP BY
    "__value"
)
SELECT
  "p"."__period" AS "__period",
  "p"."channel" AS "channel",
  COUNT(*) AS "__value"
FROM "__present" AS "p"
JOIN "__first" AS "f"
  ON "p"."__value" = "f"."__value"
WHERE
  "p"."__period" = "f"."__first"
GROUP BY
  "p"."__period",
  "p"."channel";

-- source orders, query 3
WITH "__kept" AS (
  SELECT
    (
      CAST(EXTRACT(YEAR FROM "order_date") AS Nullable(Int32)) * 12 + CAST(EXTRACT(MONTH FROM "order_date") AS Nullable(Int32)) - 1
    ) AS "__period",
    "channel" AS "channel",
    "customer_id" AS "__value",
    "order_date" AS "__time"
  FROM "orders"
  WHERE
    (
      "status" = 'paid'
    )
), "__customers" AS (
  SELECT
    *
  FROM "__kept"
  WHERE
    NOT (
      "__value" IS NULL
    )
), "__present" AS (
  SELECT
    "__period",
    "channel",
    "__value",
    1 AS "__hit"
  FROM "__customers"
  GROUP BY
    "__period",
    "channel",
    "__value"
)
SELECT
  "a"."__period" + 1 AS "__period",
  "a"."channel" AS "channel",
  COUNT(*) AS "__value"
FROM "__present" AS "a"
LEFT JOIN "__present" AS "b"
  ON "b"."__period" = "a"."__period" + 1
  AND "a"."channel" IS NOT DISTINCT FROM "b"."channel"
  AND "b"."__value" = "a"."__value"
WHERE
  "b"."__hit" IS NULL
GROUP BY
  "a"."__period" + 1,
  "a"."channel";

-- source traffic, query 1
SELECT
  "__period",
  "__d0" AS "channel",
  COALESCE(SUM("__v0"), 0) AS "__p0",
  COALESCE(SUM("__v1"), 0) AS "__p1"
FROM (
  SELECT
    (
      CAST(EXTRACT(YEAR FROM "date") AS Nullable(Int32)) * 12 + CAST(EXTRACT(MONTH FROM "date") AS Nullable(Int32)) - 1
    ) AS "__period",
    "channel" AS "__d0",
    "sessions" AS "__v0",
    "leads" AS "__v1"
  FROM "traffic"
) AS "__rows"
GROUP BY
  "__period",
  "__d0";

-- source spend, query 1
SELECT
  "__period",
  "__d0" AS "channel",
  COALESCE(SUM("__v0") FILTER(WHERE
    "__m0"), 0) AS "__p0",
  COALESCE(SUM("__v0") FILTER(WHERE
    "__m1"), 0) AS "__p1"
FROM (
  SELECT
    (
      CAST(EXTRACT(YEAR FROM "month") AS Nullable(Int32)) * 12 + CAST(EXTRACT(MONTH FROM "month") AS Nullable(Int32)) - 1
    ) AS "__period",
    "channel" AS "__d0",
    (
      "kind" = 'marketing'
    ) AS "__m0",
    "amount" AS "__v0",
    (
      "kind" = 'sales'
    ) AS "__m1"
  FROM "spend"
) AS "__rows"
GROUP BY
  "__period",
  "__d0";
