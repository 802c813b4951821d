from django.apps import AppConfig


class ModelopsConfig(AppConfig):
    name = "apps.modelops"
    label = "modelops"
