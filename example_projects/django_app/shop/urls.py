from __future__ import annotations

from django.urls import path

from . import views

urlpatterns = [
    path("", views.home),
    path("signup", views.signup),
    path("cart/<int:item_id>", views.add_to_cart),
    path("orders", views.place_order),
    path("checkout", views.checkout),
    path("report", views.report),
]
