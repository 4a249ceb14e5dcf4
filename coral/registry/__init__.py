"""Publishing Coral commits to model registries (chapter 8.2).

>>> publisher = ModelPublisher(repo)
>>> publisher.publish_local("exports/v1", commit_ref="v1.0", format="safetensors")
>>> publisher.publish_huggingface("my-org/my-model", commit_ref="main", metrics={"accuracy": 0.93})
>>> publisher.publish_mlflow("my-model", tracking_uri="http://127.0.0.1:5000")
>>> publisher.get_history(registry=RegistryType.HUGGINGFACE, success_only=True, limit=10)
"""

from coral.registry.publisher import ModelPublisher
from coral.registry.types import PublishResult, RegistryType

__all__ = ["ModelPublisher", "PublishResult", "RegistryType"]
