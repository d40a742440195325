"""Human review: Label Studio tasks out, reviewers' decisions in (file import and live webhook)."""
