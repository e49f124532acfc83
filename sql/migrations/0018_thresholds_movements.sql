-- 0018_thresholds_movements: the event thresholds set through the API, and a
-- balance that tells its movements apart.
--
-- The thresholds of 0012 (allot.event_thresholds) were the operator's to change
-- in SQL only; Events.SetThresholds replaces them as a whole and
-- Events.ListThresholds reads them. GetBalance answers, beside each
-- allocation's balance, its movements from allot.account_flows (0014): what was
-- granted, added (deposits, moves, adjustments), used, refunded, credited by
-- incidents and expired, so that "charged" no longer hides an expiry.

-- ---------------------------------------------------------------- thresholds

-- The thresholds now, in ascending order.
CREATE FUNCTION allot.rpc_list_thresholds(req jsonb, principal text) RETURNS jsonb
LANGUAGE sql STABLE AS $$
    SELECT jsonb_build_object('percents',
        coalesce((SELECT jsonb_agg(percent ORDER BY percent) FROM allot.event_thresholds),
                 '[]'))
$$;

-- Replaces the thresholds by req.percents (0 to 20 values, each 1 to 1000, no
-- repeats; empty: no threshold events from now on). A threshold added fires at
-- a project's next charge when the project is already past it; a threshold
-- removed and added again does not fire twice (events are once per project and
-- threshold, ever). Concurrent calls are serialized by the table's lock, which
-- does not block the journal's trigger (it only reads the table).
CREATE FUNCTION allot.rpc_set_thresholds(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql AS $$
DECLARE
    given jsonb := coalesce(req -> 'percents', '[]');
    wanted integer[];
    bad text;
BEGIN
    IF jsonb_typeof(given) <> 'array' THEN
        RAISE EXCEPTION 'percents must be a list of numbers' USING ERRCODE = '22023';
    END IF;
    SELECT e INTO bad FROM jsonb_array_elements_text(given) e
    WHERE e !~ '^[0-9]{1,4}$' OR e::integer NOT BETWEEN 1 AND 1000 LIMIT 1;
    IF bad IS NOT NULL THEN
        RAISE EXCEPTION 'threshold "%" is not a percent between 1 and 1000', bad
            USING ERRCODE = '22023';
    END IF;
    SELECT array_agg(e::integer ORDER BY e::integer) INTO wanted
    FROM jsonb_array_elements_text(given) e;
    wanted := coalesce(wanted, '{}');
    IF cardinality(wanted) > 20 THEN
        RAISE EXCEPTION 'at most 20 thresholds, not %', cardinality(wanted)
            USING ERRCODE = '22023';
    END IF;
    IF cardinality(wanted) <> (SELECT count(DISTINCT x) FROM unnest(wanted) x) THEN
        RAISE EXCEPTION 'threshold % is given twice',
            (SELECT x FROM unnest(wanted) x GROUP BY x HAVING count(*) > 1 ORDER BY x LIMIT 1)
            USING ERRCODE = '22023';
    END IF;
    LOCK TABLE allot.event_thresholds IN EXCLUSIVE MODE;
    DELETE FROM allot.event_thresholds WHERE percent <> ALL (wanted);
    INSERT INTO allot.event_thresholds (percent)
    SELECT x FROM unnest(wanted) x ORDER BY x ON CONFLICT (percent) DO NOTHING;
    RETURN jsonb_build_object('percents', to_jsonb(wanted));
END $$;

-- ---------------------------------------------------------------- a balance's movements

-- An account's movements as the API spells them (proto Movements).
CREATE FUNCTION allot.movements_json(granted bigint, added bigint, used bigint,
    refunded bigint, credited bigint, expired bigint) RETURNS jsonb
LANGUAGE sql IMMUTABLE AS $$
    SELECT jsonb_build_object(
        'grantedUnits', granted, 'addedUnits', added, 'usedUnits', used,
        'refundedUnits', refunded, 'creditedUnits', credited, 'expiredUnits', expired,
        'grantedGpuHours', round(granted / 3600000.0, 6),
        'addedGpuHours', round(added / 3600000.0, 6),
        'usedGpuHours', round(used / 3600000.0, 6),
        'refundedGpuHours', round(refunded / 3600000.0, 6),
        'creditedGpuHours', round(credited / 3600000.0, 6),
        'expiredGpuHours', round(expired / 3600000.0, 6))
$$;

-- rpc_get_balance as in 0003, each allocation with its movements (at most eleven
-- flow rows an allocation, read by allot.account_movements) and the total with
-- their sums.
CREATE OR REPLACE FUNCTION allot.rpc_get_balance(req jsonb, principal text) RETURNS jsonb
LANGUAGE plpgsql STABLE AS $$
DECLARE
    project bigint := allot.project_id(allot.j_text(req, 'project'));
    rows_ jsonb;
    total jsonb;
    moved jsonb;
BEGIN
    WITH per AS (
        SELECT a.*, n.unit, n.per_unit, allot.allocation_json(a) -> 'resources' AS listed,
            ac.credits_posted AS granted, ac.debits_posted AS charged,
            ac.debits_pending - ac.credits_pending AS pending,
            a.native_charged_milli / 1000.0 AS native_charged,
            m.granted AS m_granted, m.added AS m_added, m.usage AS m_used,
            m.refunded AS m_refunded, m.credited AS m_credited, m.expired AS m_expired
        FROM allot.allocations a
        JOIN allot.accounts ac ON ac.allocation_id = a.id
        LEFT JOIN LATERAL allot.allocation_native(a) n ON true
        CROSS JOIN LATERAL allot.account_movements(ac.id) m
        WHERE a.project_id = project
    )
    SELECT coalesce(jsonb_agg(jsonb_build_object(
               'allocationId', per.id,
               'scope', CASE
                   WHEN jsonb_array_length(per.listed) > 0
                       THEN (SELECT string_agg(x, ', ') FROM jsonb_array_elements_text(per.listed) x)
                   WHEN per.site IS NOT NULL THEN 'site ' || per.site
                   ELSE 'all sites' END,
               'startsAt', allot.rfc3339(per.starts_at), 'endsAt', allot.rfc3339(per.ends_at),
               'balance', allot.balance_json(per.granted, per.charged, per.pending, per.unit,
                                             per.native_charged, per.per_unit),
               'movements', allot.movements_json(per.m_granted, per.m_added, per.m_used,
                                                 per.m_refunded, per.m_credited, per.m_expired))
               ORDER BY per.id), '[]'),
           allot.balance_json(coalesce(sum(per.granted), 0)::bigint,
               coalesce(sum(per.charged), 0)::bigint, coalesce(sum(per.pending), 0)::bigint,
               CASE WHEN count(DISTINCT per.unit) = 1 AND bool_and(per.unit IS NOT NULL)
                    THEN min(per.unit) END,
               coalesce(sum(per.native_charged), 0),
               NULL),
           allot.movements_json(coalesce(sum(per.m_granted), 0)::bigint,
               coalesce(sum(per.m_added), 0)::bigint, coalesce(sum(per.m_used), 0)::bigint,
               coalesce(sum(per.m_refunded), 0)::bigint,
               coalesce(sum(per.m_credited), 0)::bigint,
               coalesce(sum(per.m_expired), 0)::bigint)
    INTO rows_, total, moved
    FROM per;
    -- The total's native figures are sums of the allocations' (ratios may differ).
    IF total ->> 'nativeUnit' <> '' THEN
        SELECT total || jsonb_build_object(
            'nativeGranted', sum((e -> 'balance' ->> 'nativeGranted')::numeric),
            'nativePending', sum((e -> 'balance' ->> 'nativePending')::numeric),
            'nativeAvailable', sum((e -> 'balance' ->> 'nativeAvailable')::numeric))
        INTO total FROM jsonb_array_elements(rows_) e;
    END IF;
    RETURN jsonb_build_object('project', allot.j_text(req, 'project'), 'total', total,
                              'allocations', rows_, 'movements', moved);
END $$;
