"""The CDK stack of one environment and the constructs it is made of."""
