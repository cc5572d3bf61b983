-- source orders, query 1
SELECT
  "__period",
  "__d0" AS "channel",
  COALESCE(SUM("__v0") FILTER(WHERE
    "__m0"), 0) AS "__p0",
  COUNT(*) FILTER(WHERE
    "__m0") AS "__p1",
  COUNT(DISTINCT "__v1") FILTER(WHERE
    "__m0") AS "__p2",
  COUNT(*) FILTER(WHERE
    "__m1") AS "__p3"
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
    "customer_id" AS "__v1",
    (
      "status" = 'refunded'
    ) AS "__m1"
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
), "__overall" AS (
  SELECT DISTINCT
    "__value",
    "__period"
  FROM "__customers"
  WHERE
    NOT (
      "__value" IS NULL
    )
), "__lagged" AS (
  SELECT
    "__value",
    "__period",
    lag("__period") OVER (PARTITION BY "__value" ORDER BY "__period") AS "__before"
  FROM "__overall"
), "__flagged" AS (
  SELECT
    "__value",
    "__period"
  FROM "__lagged"
  WHERE
    "__period" - "__before" - 1 >= 2
)
SELECT
  "p"."__period" AS "__period",
  "p"."channel" AS "channel",
  COUNT(*) AS "__value"
FROM "__present" AS "p"
JOIN "__flagged" AS "q"
  ON "p"."__value" = "q"."__value" AND "p"."__period" = "q"."__period"
GROUP BY
  "p"."__period",
  "p"."channel";

-- source orders, query 4
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

-- source orders, query 5
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
    COUNT(*) AS "__n"
  FROM "__customers"
  GROUP BY
    "__period",
    "channel",
    "__value"
)
SELECT
  "p"."__period" AS "__period",
  "p"."channel" AS "channel",
  COUNT(*) AS "__value"
FROM "__present" AS "p"
WHERE
  "p"."__n" >= 2
GROUP BY
  "p"."__period",
  "p"."channel";

-- source emails, query 1
SELECT
  "__period",
  COALESCE(SUM("__v0"), 0) AS "__p0",
  COALESCE(SUM("__v1"), 0) AS "__p1",
  COALESCE(SUM("__v2"), 0) AS "__p2",
  COALESCE(SUM("__v3"), 0) AS "__p3"
FROM (
  SELECT
    (
      CAST(EXTRACT(YEAR FROM "sent_at") AS Nullable(Int32)) * 12 + CAST(EXTRACT(MONTH FROM "sent_at") AS Nullable(Int32)) - 1
    ) AS "__period",
    "delivered" AS "__v0",
    "opened" AS "__v1",
    "clicked" AS "__v2",
    "conversions" AS "__v3"
  FROM "emails"
) AS "__rows"
GROUP BY
  "__period";

-- source surveys, query 1
SELECT
  "__period",
  COALESCE(SUM(CAST("__v0" AS Nullable(Int32))) FILTER(WHERE
    "__m0"), 0) AS "__p0",
  COALESCE(SUM(CAST("__v1" AS Nullable(Int32))) FILTER(WHERE
    "__m0"), 0) AS "__p1",
  COUNT("__v2") FILTER(WHERE
    "__m0") AS "__p2"
FROM (
  SELECT
    (
      CAST(EXTRACT(YEAR FROM "answered_at") AS Nullable(Int32)) * 12 + CAST(EXTRACT(MONTH FROM "answered_at") AS Nullable(Int32)) - 1
    ) AS "__period",
    (
      "survey" = 'nps'
    ) AS "__m0",
    "score" >= 9 AS "__v0",
    "score" <= 6 AS "__v1",
    "score" AS "__v2"
  FROM "surveys"
) AS "__rows"
GROUP BY
  "__period";

-- source spend, query 1
SELECT
  "__period",
  "__d0" AS "channel",
  COALESCE(SUM("__v0") FILTER(WHERE
    "__m0"), 0) AS "__p0"
FROM (
  SELECT
    (
      CAST(EXTRACT(YEAR FROM "month") AS Nullable(Int32)) * 12 + CAST(EXTRACT(MONTH FROM "month") AS Nullable(Int32)) - 1
    ) AS "__period",
    "channel" AS "__d0",
    (
      "kind" IN ('marketing', 'sales')
    ) AS "__m0",
    "amount" AS "__v0"
  FROM "spend"
) AS "__rows"
GROUP BY
  "__period",
  "__d0";
