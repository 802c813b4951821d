from django.urls import path

from apps.studies.consumers import StudyStatusConsumer, UserStudiesConsumer

websocket_urlpatterns = [
    path("ws/studies/<uuid:study_id>/", StudyStatusConsumer.as_asgi()),
    path("ws/studies/", UserStudiesConsumer.as_asgi()),
]
