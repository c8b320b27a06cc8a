-- What schema asyncrr holds, as rows d, for sql/upgrade.sql to compare a
-- new install with an updated one: functions (arguments, result, body,
-- library, settings, security, volatility, privileges), indexes, views and
-- the privileges on tables and views.
CREATE TEMP VIEW asyncrr_catalog AS
    SELECT format('%s(%s) %s %s %s %s %s %s %s', p.proname, pg_get_function_arguments(p.oid),
                  pg_get_function_result(p.oid), p.prosrc, p.probin, p.proconfig, p.prosecdef,
                  p.provolatile, p.proacl) AS d
      FROM pg_proc p WHERE p.pronamespace = 'asyncrr'::regnamespace
    UNION ALL SELECT indexdef FROM pg_indexes WHERE schemaname = 'asyncrr'
    UNION ALL SELECT format('%s %s', viewname, definition) FROM pg_views WHERE schemaname = 'asyncrr'
    UNION ALL SELECT format('%s %s', c.relname, c.relacl) FROM pg_class c
     WHERE c.relnamespace = 'asyncrr'::regnamespace AND c.relkind IN ('r', 'v');
