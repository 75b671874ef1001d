"""Reading `pulumi preview --json` output in CI: the diff guard and the pull-request summary."""
