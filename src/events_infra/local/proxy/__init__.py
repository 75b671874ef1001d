"""A strict Pub/Sub proxy: the real emulator behind it, production's rules in front.

The Pub/Sub emulator accepts what Google Cloud refuses (a Publish request mixing ordering keys,
an unparsable filter), ignores subscription filters and always answers pulls in full. Tests,
`eventsctl local up` and the benches talk to the emulator through this proxy so that what passes
here would pass on Google Cloud. `limits` holds the publish limits the relay also builds within.

    python -m events_infra.local.proxy --backend 127.0.0.1:8085 --port 8086
"""
