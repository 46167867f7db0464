"""Per-stream state and policy: features, the CTC READ/WRITE policy and the simultaneous translator."""
