from __future__ import annotations

from django.urls import include, path

from . import views

api = [path("items/<int:item_id>/", views.item)]

urlpatterns = [
    path("items/<int:item_id>/", views.item),
    path("async/items/<int:item_id>/", views.async_item),
    path("fail/", views.fail),
    path("async/fail/", views.async_fail),
    path("missing/", views.missing),
    path("forbidden/", views.forbidden),
    path("stream/", views.stream),
    path("async/stream/", views.async_stream),
    path("stream-in-context/<str:visitor>/", views.stream_in_context),
    path("cache-in-use/", views.cache_in_use),
    path("stream-in-french/", views.stream_in_french),
    path("api/", include(api)),
    path("captured-then-raised/", views.captured_then_raised),
    path("middleware-fails/", views.item, {"item_id": 0}),
    path("identity/", views.identity),
    path("flag/", views.flag),
    path("checkout-with-flags/", views.checkout_with_flags),
    path("async/checkout-with-flags/", views.async_checkout_with_flags),
    path("async/flag/", views.async_flag),
    path("async/identity/", views.async_identity),
    path("async/identity-after-auser/", views.async_identity_after_auser),
    path("user-untouched/", views.user_untouched),
    path("async/user-untouched/", views.async_user_untouched),
    path("", views.item, {"item_id": 1}),
]
