-- A per-repo secret for verifying GitHub webhook signatures (X-Hub-Signature-256).
ALTER TABLE repos ADD COLUMN webhook_secret TEXT;
