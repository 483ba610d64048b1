"""Cross-cutting tests of the API contract: scoping, secrets, OpenAPI fuzzing."""
