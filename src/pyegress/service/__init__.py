"""Job control: requests become EgressInfo, handlers are launched and tracked, state is stored."""
