"""Release services, one module per concern: ``shadow`` (shadow runs), ``promotion`` (policy, evidence,
requests, reviews, canary, rollback)."""
