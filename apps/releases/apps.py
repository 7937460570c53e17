from django.apps import AppConfig


class ReleasesConfig(AppConfig):
    """Shadow runs, canaries, promotion requests and reviews, the promotion policy, rollback.

    Sits above monitoring (release evidence reads outcomes and alerts). Deployments, below it, asks for
    release rules through the hooks this app registers in ``ready()`` (``apps.deployments.hooks``).
    """

    name = "apps.releases"
    label = "releases"

    def ready(self) -> None:
        from apps.deployments import hooks

        from .services import promotion

        hooks.register_go_live_check(promotion.first_version_go_live_check)
        hooks.register_version_switch_check(promotion.version_switch_check)
