"""What can go wrong in delivery: one base class, so a command catches all of it in one place."""


class DeliveryError(RuntimeError):
    """A delivery step failed; the message names what, why, and where the logs are."""


class DeployError(DeliveryError):
    """A deployment could not reach its desired state."""


class SmokeError(DeliveryError):
    """A service check failed or a service never became ready."""


class PrometheusError(DeliveryError):
    """Prometheus could not be queried; the message says which query and why."""
