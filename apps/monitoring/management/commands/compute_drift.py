from django.core.management.base import BaseCommand

from apps.monitoring.services import compute_drift_scores


class Command(BaseCommand):
    help = "Compute the drift score of the serving model versions now (beat runs this periodically)."

    def handle(self, *args, **options):
        scores = compute_drift_scores()
        if not scores:
            self.stdout.write("no serving model has a drift reference yet")
        for score in scores:
            verdict = "DRIFTED: marked for retraining review" if score.drifted else "ok"
            shown = "n/a (window too small)" if score.score is None else f"{score.score:.2f}"
            self.stdout.write(f"{score.model_version}: score {shown} over {score.n} predictions, {verdict}")
