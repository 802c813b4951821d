from django.urls import path

from apps.modelops.consumers import JobProgressConsumer
from apps.studies.consumers import StudyStatusConsumer, UserStudiesConsumer

websocket_urlpatterns = [
    path("ws/studies/<uuid:study_id>/", StudyStatusConsumer.as_asgi()),
    path("ws/studies/", UserStudiesConsumer.as_asgi()),
    path("ws/modelops/<str:kind>/<int:job_id>/", JobProgressConsumer.as_asgi()),
]
