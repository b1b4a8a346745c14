"""Job control: requests become EgressInfo, workers are launched and tracked, state is stored."""
