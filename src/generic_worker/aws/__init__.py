"""`--configure-for-aws`: the EC2 metadata service, the provisioner's secret, the config layer they make."""

from generic_worker.aws.metadata import MetadataError, MetadataService
from generic_worker.aws.startup import AWS_LAYER_CACHE, aws_config_layer

__all__ = ["AWS_LAYER_CACHE", "MetadataError", "MetadataService", "aws_config_layer"]
