-- Sample desired rows for docker-compose (idempotent).
INSERT INTO desired_snapshot_callbacks (domain_name, notify_url, notify_req_auth, notify_auth_key)
SELECT format('live%s.compose.example.com', lpad(i::text, 4, '0')),
       format('https://hooks.example.com/snapshot/%s', i),
       i % 3 = 0,
       CASE WHEN i % 3 = 0 THEN format('composeKey%sX', lpad(i::text, 8, '0')) END
FROM generate_series(1, 300) AS i
ON CONFLICT (domain_name) DO NOTHING;
