"""dmuc speaks server-to-server itself (issue 10)."""
