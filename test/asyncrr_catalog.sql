-- What extension asyncrr holds, as rows (kind, d), for sql/upgrade.sql to
-- compare a new install with an updated one, in two databases: in the new
-- install's,
--   SELECT json_agg(json_build_array(kind, d)) AS fresh FROM asyncrr_catalog \gset
-- and then in the updated one's, the rows that differ:
--   SELECT * FROM pg_temp.asyncrr_catalog_diff(:'fresh');
-- Names only, never OIDs:
--   function    kind, arguments with names and defaults, result, language,
--               security, volatility, strictness, leakproofness,
--               parallel safety, cost, rows, settings (proconfig), body or
--               C symbol and library, privileges, comment
--   relation    kind, options, privileges, comment (tables, views, indexes)
--   column      position among the visible columns, type, default,
--               not-null, privileges, comment
--   constraint  its definition; index: its definition; view: its query
--   schema      privileges, comment
--   extension   the tables whose rows pg_dump keeps, with their conditions
--   member      every object of the extension (pg_describe_object)
CREATE TEMP VIEW asyncrr_catalog AS
    SELECT 'function' AS kind,
           concat_ws(' ', p.proname || '(' || pg_get_function_arguments(p.oid) || ')',
                     p.prokind, 'returns', pg_get_function_result(p.oid),
                     'language', l.lanname, 'secdef', p.prosecdef, 'volatile', p.provolatile,
                     'strict', p.proisstrict, 'leakproof', p.proleakproof,
                     'parallel', p.proparallel, 'cost', p.procost, 'rows', p.prorows,
                     'config', quote_nullable(p.proconfig), 'acl', quote_nullable(p.proacl),
                     'comment', quote_nullable(obj_description(p.oid, 'pg_proc')),
                     'src', quote_nullable(p.prosrc), 'bin', quote_nullable(p.probin)) AS d
      FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
     WHERE p.pronamespace = 'asyncrr'::regnamespace
    UNION ALL
    SELECT 'relation', concat_ws(' ', c.relname, c.relkind, 'options', quote_nullable(c.reloptions),
                                 'acl', quote_nullable(c.relacl),
                                 'comment', quote_nullable(obj_description(c.oid, 'pg_class')))
      FROM pg_class c WHERE c.relnamespace = 'asyncrr'::regnamespace
    UNION ALL
    SELECT 'column', concat_ws(' ', c.relname,
                               row_number() OVER (PARTITION BY c.oid ORDER BY a.attnum), a.attname,
                               format_type(a.atttypid, a.atttypmod),
                               'default', quote_nullable(pg_get_expr(ad.adbin, ad.adrelid)),
                               'notnull', a.attnotnull, 'acl', quote_nullable(a.attacl),
                               'comment', quote_nullable(col_description(c.oid, a.attnum)))
      FROM pg_class c
      JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
      LEFT JOIN pg_attrdef ad ON ad.adrelid = c.oid AND ad.adnum = a.attnum
     WHERE c.relnamespace = 'asyncrr'::regnamespace AND c.relkind IN ('r', 'v')
    UNION ALL
    SELECT 'constraint', concat_ws(' ', c.relname, k.conname, pg_get_constraintdef(k.oid))
      FROM pg_constraint k JOIN pg_class c ON c.oid = k.conrelid
     WHERE c.relnamespace = 'asyncrr'::regnamespace
    UNION ALL
    SELECT 'index', indexdef FROM pg_indexes WHERE schemaname = 'asyncrr'
    UNION ALL
    SELECT 'view', viewname || ' ' || definition FROM pg_views WHERE schemaname = 'asyncrr'
    UNION ALL
    SELECT 'schema', concat_ws(' ', n.nspname, 'acl', quote_nullable(n.nspacl),
                               'comment', quote_nullable(obj_description(n.oid, 'pg_namespace')))
      FROM pg_namespace n WHERE n.nspname = 'asyncrr'
    UNION ALL
    SELECT 'extension', concat_ws(' ', e.extname, 'schema', e.extnamespace::regnamespace,
                                  'relocatable', e.extrelocatable,
                                  'config', (SELECT array_agg(r::regclass::text ORDER BY i)
                                               FROM unnest(e.extconfig) WITH ORDINALITY AS u(r, i)),
                                  'conditions', quote_nullable(e.extcondition))
      FROM pg_extension e WHERE e.extname = 'asyncrr'
    UNION ALL
    SELECT 'member', pg_describe_object(dep.classid, dep.objid, dep.objsubid)
      FROM pg_depend dep
     WHERE dep.refclassid = 'pg_extension'::regclass AND dep.deptype = 'e'
       AND dep.refobjid = (SELECT e.oid FROM pg_extension e WHERE e.extname = 'asyncrr');

-- The rows in which this (updated) database differs from a new install,
-- given as the JSON array of the [kind, d] pairs of its asyncrr_catalog.
CREATE FUNCTION pg_temp.asyncrr_catalog_diff(fresh json)
    RETURNS TABLE(only_in text, kind text, d text) LANGUAGE sql AS $$
    WITH f AS (SELECT e->>0 AS kind, e->>1 AS d FROM json_array_elements(fresh) e)
    SELECT x.* FROM (
        (SELECT 'new install' AS only_in, * FROM (SELECT kind, d FROM f
                                                  EXCEPT ALL SELECT kind, d FROM asyncrr_catalog) a)
        UNION ALL
        (SELECT 'updated', * FROM (SELECT kind, d FROM asyncrr_catalog
                                   EXCEPT ALL SELECT kind, d FROM f) b)) x
     ORDER BY x.kind, x.d, x.only_in
$$;
