-- source emails, query 1
SELECT
  "__period",
  "__d0" AS "campaign",
  COALESCE(SUM("__v0"), 0) AS "__p0",
  COALESCE(SUM("__v1"), 0) AS "__p1",
  COALESCE(SUM("__v2"), 0) AS "__p2",
  COALESCE(SUM("__v3"), 0) AS "__p3",
  COALESCE(SUM("__v4"), 0) AS "__p4",
  COALESCE(SUM("__v5"), 0) AS "__p5"
FROM (
  SELECT
    (
      CAST(DATE_PART(YEAR, "sent_at") AS INT) * 12 + CAST(DATE_PART(MONTH, "sent_at") AS INT) - 1
    ) AS "__period",
    "campaign" AS "__d0",
    "sent" AS "__v0",
    "bounced" AS "__v1",
    "delivered" AS "__v2",
    "opened" AS "__v3",
    "clicked" AS "__v4",
    "conversions" AS "__v5"
  FROM "emails"
) AS "__rows"
GROUP BY
  "__period",
  "__d0";
