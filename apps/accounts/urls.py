from django.urls import path

from apps.accounts import views

urlpatterns = [
    path("signup/", views.signup, name="signup"),
    path("me/", views.account, name="account"),
    path("me/password/", views.password_change, name="password-change"),
    path("me/research-consent/", views.research_consent, name="research-consent"),
    path("me/delete/", views.account_delete, name="account-delete"),
]
