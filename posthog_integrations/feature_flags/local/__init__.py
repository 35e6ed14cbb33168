"""Local evaluation of feature flags from definitions polled from PostHog."""
