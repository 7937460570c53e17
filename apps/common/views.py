from django.shortcuts import render


def page_not_found(request, exception=None):
    if request.path.startswith("/api/"):
        from django.http import JsonResponse

        return JsonResponse({"detail": "Not found", "errors": []}, status=404)
    return render(request, "404.html", {}, status=404)


def permission_denied(request, exception=None):
    message = str(exception) if exception else "You do not have permission to do this."
    if request.path.startswith("/api/"):
        from django.http import JsonResponse

        return JsonResponse({"detail": message, "errors": []}, status=403)
    if getattr(request, "htmx", False):
        from django.http import HttpResponse
        from django.utils.html import escape

        return HttpResponse(f'<div class="flash flash-error" role="alert">{escape(message)}</div>', status=403)
    return render(request, "403.html", {"message": message}, status=403)


def api_not_found(request):
    from django.http import JsonResponse

    return JsonResponse({"detail": f"No API endpoint at {request.path}", "errors": []}, status=404)
