"""The contract between the service and its egress handlers: everything that crosses the process
boundary (the job, commands, events and how they update an EgressInfo), encoding settings, layout
names and the redaction of stream URLs. It imports nothing from ``media`` or ``service``, so both
depend on it and not on each other."""
