"""The maintenance domain: compaction, manifest rewrite, snapshot expiry and orphan removal of every table."""
