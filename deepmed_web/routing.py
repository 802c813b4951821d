from django.urls import path

from apps.modelops.consumers import JobProgressConsumer
from apps.studies.consumers import StudyStatusConsumer, UserStudiesConsumer
from deepmed_web.ws_auth import close_codes

# close_codes: refusals reach the client as close codes 4401 / 4403 (see deepmed_web/ws_auth.py).
websocket_urlpatterns = [
    path("ws/studies/<uuid:study_id>/", close_codes(StudyStatusConsumer.as_asgi())),
    path("ws/studies/", close_codes(UserStudiesConsumer.as_asgi())),
    path("ws/modelops/<str:kind>/<int:job_id>/", close_codes(JobProgressConsumer.as_asgi())),
]
