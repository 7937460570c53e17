from django import forms

from .models import Role
from .services import NAME_MAX, SLUG_MAX


class ProjectForm(forms.Form):
    name = forms.CharField(max_length=NAME_MAX, help_text="Shown everywhere; up to 120 characters.")
    slug = forms.SlugField(max_length=SLUG_MAX, required=False,
                           help_text="Used in URLs and the API. Leave empty to derive it from the name.")
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False, max_length=5000)


class ProjectEditForm(forms.Form):
    name = forms.CharField(max_length=NAME_MAX)
    description = forms.CharField(widget=forms.Textarea(attrs={"rows": 4}), required=False, max_length=5000)


class MemberAddForm(forms.Form):
    username = forms.CharField(max_length=150, widget=forms.TextInput(attrs={"placeholder": "username", "list": "usernames"}))
    role = forms.ChoiceField(choices=Role.choices, initial=Role.DATA_SCIENTIST)


class MemberRoleForm(forms.Form):
    role = forms.ChoiceField(choices=Role.choices)


class TokenForm(forms.Form):
    name = forms.CharField(max_length=80, widget=forms.TextInput(attrs={"placeholder": "e.g. notebook on my laptop"}))


class AuditFilterForm(forms.Form):
    verb = forms.CharField(required=False, max_length=60)
    actor = forms.CharField(required=False, max_length=150)
    target_type = forms.CharField(required=False, max_length=60)
