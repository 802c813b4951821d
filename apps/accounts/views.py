"""Account pages: sign-up, disclaimer, research consent, account deletion. Thin: rules in services."""

from __future__ import annotations

from django import forms
from django.contrib import messages
from django.contrib.auth import login, logout, password_validation, update_session_auth_hash
from django.contrib.auth.decorators import login_required
from django.contrib.auth.forms import PasswordChangeForm
from django.core.exceptions import PermissionDenied, ValidationError
from django.shortcuts import redirect, render
from django.utils.functional import lazy
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from apps.accounts.disclaimer import current_disclaimer, current_research_text
from apps.accounts.selectors import current_consent, has_research_consent, latest_research_decision
from apps.accounts.services import (
    accept_disclaimer,
    change_password,
    decide_research_use,
    delete_account,
    register_patient,
)
from apps.accounts.usernames import clean_username
from apps.audit.services import client_ip
from deepmed_web.throttles import AUTH_THROTTLES, web_rate_limit_wait


class SignupForm(forms.Form):
    username = forms.CharField(
        max_length=150,
        help_text="Up to 150 letters, digits and . _ - @ + (no spaces). Others see it only if they review your studies.",
        widget=forms.TextInput(attrs={"autocomplete": "username", "autocapitalize": "none", "spellcheck": "false"}),
    )
    email = forms.EmailField(
        required=False,
        label="E-mail (optional)",
        help_text="Only to tell you when a physician has reviewed a study; the e-mail never says what was found.",
        widget=forms.EmailInput(attrs={"autocomplete": "email"}),
    )
    # The rules are shown before the first submission (AUTH_PASSWORD_VALIDATORS' own help texts).
    password1 = forms.CharField(
        label="Password",
        help_text=lazy(password_validation.password_validators_help_text_html, str)(),
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )
    password2 = forms.CharField(
        label="Password again",
        help_text="The same password, to check it.",
        widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}),
    )

    def clean_username(self):
        return clean_username(self.cleaned_data["username"])

    def clean(self):
        data = super().clean()
        if data.get("password1") and data.get("password1") != data.get("password2"):
            self.add_error("password2", "The two passwords differ.")
        return data


class DeleteAccountForm(forms.Form):
    password = forms.CharField(
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}), help_text="Your password, to confirm."
    )
    confirm = forms.BooleanField(label="I understand that my account and all my studies are deleted for good.")


def _safe_next(request, default: str) -> str:
    target = request.GET.get("next") or ""
    if url_has_allowed_host_and_scheme(target, allowed_hosts={request.get_host()}, require_https=request.is_secure()):
        return target
    return default


@login_required
def home(request):
    if request.user.is_patient:
        return redirect("study-list")
    if request.user.role == "admin":  # the operations console; the Django admin is linked from it
        return redirect("modelops-console")
    if request.user.is_staff:
        return redirect("admin:index")
    return render(request, "accounts/staff_home.html")


@require_GET
def landing(request):
    """The start page: visitors learn what DeepMed is and is not; people signed in go on to their
    role's home page."""
    if request.user.is_authenticated:
        return home(request)
    return render(request, "landing.html")


@require_http_methods(["GET", "POST"])
def signup(request):
    """Patients register themselves; physicians and admins are created by admins."""
    if request.user.is_authenticated:
        return redirect("home")
    form = SignupForm(request.POST or None)
    wait = web_rate_limit_wait(request, AUTH_THROTTLES) if request.method == "POST" else None
    if wait is not None:
        form.add_error(None, f"Too many sign-ups from here. Please try again in {int(wait) + 1} seconds.")
        return render(request, "registration/signup.html", {"form": form}, status=429)
    if request.method == "POST" and form.is_valid():
        try:
            user = register_patient(
                username=form.cleaned_data["username"],
                password=form.cleaned_data["password1"],
                email=form.cleaned_data["email"],
                ip_address=client_ip(request),
            )
        except ValidationError as exc:
            form.add_error(None if hasattr(exc, "error_dict") else "password1", exc)
        except ValueError:
            form.add_error("username", "This username is taken.")
        else:
            login(request, user, backend="django.contrib.auth.backends.ModelBackend")
            return redirect("disclaimer")
    return render(request, "registration/signup.html", {"form": form}, status=400 if form.errors else 200)


@login_required
@require_http_methods(["GET", "POST"])
def disclaimer(request):
    if request.method == "POST" and request.POST.get("accept") == "yes":
        accept_disclaimer(request.user, ip_address=client_ip(request))
        return redirect(_safe_next(request, "study-upload"))
    return render(
        request,
        "accounts/disclaimer.html",
        {"disclaimer": current_disclaimer(), "consent": current_consent(request.user)},
    )


@login_required
@require_http_methods(["GET"])
def account(request):
    return _account_page(request, DeleteAccountForm())


def _account_page(request, delete_form: DeleteAccountForm, status: int = 200):
    user = request.user
    context = {
        "consent": current_consent(user),
        "disclaimer": current_disclaimer(),
        "research_text": current_research_text(),
        "research_decision": latest_research_decision(user),
        "research_granted": has_research_consent(user),
        "delete_form": delete_form,
    }
    return render(request, "accounts/account.html", context, status=status)


@login_required
@require_POST
def research_consent(request):
    """Explicit opt-in (or withdrawal) of research use, separate from the disclaimer."""
    if not request.user.is_patient:
        raise PermissionDenied("Research consent concerns patients' images.")
    granted = request.POST.get("decision") == "grant"
    decide_research_use(request.user, granted=granted, ip_address=client_ip(request))
    messages.success(request, "Thank you: research use is allowed." if granted else "Research use is withdrawn.")
    return redirect("account")


@login_required
@require_POST
def account_delete(request):
    if not request.user.is_patient:
        raise PermissionDenied("Staff accounts are removed by an administrator.")
    form = DeleteAccountForm(request.POST)
    if form.is_valid() and request.user.check_password(form.cleaned_data["password"]):
        user = request.user
        logout(request)
        delete_account(user, ip_address=client_ip(request))
        messages.success(request, "Your account and all your data were deleted.")
        return redirect("login")
    if form.is_valid():
        form.add_error("password", "The password is not correct.")
    return _account_page(request, form, status=400)


@login_required
@require_http_methods(["GET", "POST"])
def password_change(request):
    """Django's form for the checks and messages; the change itself (and revoking the user's
    app tokens) is the same service the API uses."""
    form = PasswordChangeForm(request.user, request.POST or None)
    if request.method == "POST" and form.is_valid():
        change_password(
            request.user,
            old_password=form.cleaned_data["old_password"],
            new_password=form.cleaned_data["new_password1"],
            ip_address=client_ip(request),
        )
        update_session_auth_hash(request, request.user)  # this browser stays signed in
        messages.success(request, "Your password was changed. Apps signed in with the old one must sign in again.")
        return redirect("account")
    return render(request, "accounts/password_change.html", {"form": form}, status=400 if form.errors else 200)
