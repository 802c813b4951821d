"""One way every form field is rendered (templates/forms/field.html): its label, its help text,
the field, then its errors, all tied to the field for assistive technology.

Django 5.2's BoundField already writes `aria-invalid="true"` on a field with errors and
`aria-describedby="<id>_helptext <id>_error"`; the template gives the help and the error list
exactly those ids. `{% load form_fields %}{% field_row form.email %}`; `{% form_rows form %}`
renders the non-field errors and every visible field.
"""

from __future__ import annotations

from django import forms, template
from django.template.loader import render_to_string

register = template.Library()


@register.simple_tag
def field_row(field) -> str:
    return render_to_string(
        "forms/field.html", {"field": field, "check": isinstance(field.field.widget, forms.CheckboxInput)}
    )


@register.simple_tag
def form_rows(form) -> str:
    return render_to_string("forms/form_rows.html", {"form": form})
