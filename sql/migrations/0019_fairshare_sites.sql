-- 0019_fairshare_sites: the usage of each site on its own, for the fair share of one
-- site's usage (FairShare's usage_site, README "Fair share"). allotd reads it in the
-- same snapshot as allot.fairshare_state (one REPEATABLE READ transaction) and builds,
-- beside the tree of all sites' usage, one tree per site with the same nodes and shares
-- and only that site's usage.

-- Every site (allot.sites, by name), with its usage per (project, user, day) as
-- fairshare_state's kind 2 rows give it for all sites: a job reported without a user
-- counts for "-"; n1 the day (epoch s of 00:00 UTC), n2 GPU-hours. A site with no usage
-- has one row with NULL project_id, so that every site is known. Ordered by site, then
-- project.
CREATE FUNCTION allot.fairshare_site_usage()
RETURNS TABLE (site text, project_id bigint, user_name text, n1 double precision,
    n2 double precision)
LANGUAGE sql STABLE AS $$
    SELECT s.name, ud.project_id, CASE ud.user_name WHEN '' THEN '-' ELSE ud.user_name END,
        extract(epoch FROM ud.day::timestamp)::double precision, sum(ud.units) / 3600000.0
    FROM allot.usage_days ud
    JOIN allot.sites s ON s.name = ud.site
    WHERE ud.units > 0
    GROUP BY 1, 2, 3, 4
    UNION ALL
    SELECT s.name, NULL, NULL, NULL, NULL
    FROM allot.sites s
    WHERE NOT EXISTS (SELECT 1 FROM allot.usage_days ud WHERE ud.site = s.name AND ud.units > 0)
    ORDER BY 1, 2
$$;
