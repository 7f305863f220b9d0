"""The registry: models, versions, tokens (services and selectors)."""
