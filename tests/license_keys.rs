//! Behaviour of customers, products, license keys, instances and the public endpoints,
//! on every backend.

mod common;

use std::collections::HashSet;
use std::sync::Arc;

use common::{Reply, TestServer};
use reqwest::Method;
use serde_json::{Value, json};

backend_tests!(
    customers_are_created_retrieved_and_listed,
    products_carry_license_key_defaults,
    products_take_dodos_price_and_descriptive_fields,
    products_refuse_what_dodos_schema_refuses,
    keys_are_generated_or_imported_with_the_products_defaults,
    duplicate_keys_are_409_across_businesses,
    keys_list_with_every_filter_and_page,
    patch_is_tri_state_with_its_error_codes,
    activate_validate_deactivate,
    a_generated_key_typed_in_small_letters_or_with_spaces_is_found,
    activation_refusals,
    instances_are_listed_retrieved_and_renamed,
    public_endpoints_ignore_authorization_and_are_rate_limited_per_ip,
    bad_input_is_400_naming_the_field,
    query_parameters_a_route_does_not_take_are_400,
    businesses_are_isolated,
    read_only_keys_cannot_write,
    concurrent_activations_never_exceed_the_limit,
    concurrent_activations_of_machines_take_one_seat_each,
    lowering_the_limit_while_activations_race_keeps_the_invariant,
    inputs_the_fuzzer_found_are_refused,
);

async fn customer(server: &TestServer) -> String {
    let reply = server
        .post(
            "/customers",
            json!({"email": "ada@example.com", "name": "Ada"}),
        )
        .await;
    reply.expect(201).json["customer_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

async fn product(server: &TestServer, body: Value) -> String {
    let reply = server.post("/products", body).await;
    reply.expect(201).json["product_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// A customer, a product with the given defaults, and a key issued with `extra` fields.
async fn issue(server: &TestServer, defaults: Value, extra: Value) -> Reply {
    let customer_id = customer(server).await;
    let mut product_body = json!({"name": "Editor Pro"});
    product_body
        .as_object_mut()
        .unwrap()
        .extend(defaults.as_object().unwrap().clone());
    let product_id = product(server, product_body).await;
    let mut body = json!({"customer_id": customer_id, "product_id": product_id});
    body.as_object_mut()
        .unwrap()
        .extend(extra.as_object().unwrap().clone());
    server.post("/license_keys", body).await
}

async fn public(server: &TestServer, action: &str, body: Value) -> Reply {
    server
        .call(Method::POST, &format!("/licenses/{action}"), "", Some(body))
        .await
}

/// A new key and the id of its one activation.
async fn issued_and_activated(server: &TestServer) -> (Reply, String) {
    let key = issue(server, json!({}), json!({})).await;
    let activated = public(
        server,
        "activate",
        json!({"license_key": key.json["key"], "name": "a"}),
    )
    .await;
    let instance = activated.json["id"].as_str().unwrap().to_owned();
    (key, instance)
}

/// The ids of the key's instances as listed (one page of up to 100).
async fn listed_instance_ids(server: &TestServer, key_id: &str) -> HashSet<String> {
    let listed = server
        .get(&format!(
            "/license_key_instances?page_size=100&license_key_id={key_id}"
        ))
        .await;
    (listed.json["items"].as_array().unwrap().iter())
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect()
}

async fn customers_are_created_retrieved_and_listed(server: TestServer) {
    let created = server
        .post("/customers", json!({"email": "ada@example.com", "name": "Ada", "phone_number": "+44 20 7946 0000", "metadata": {"crm": "42"}}))
        .await;
    created.expect(201);
    let id = created.json["customer_id"].as_str().unwrap();
    assert!(id.starts_with("cus_"));
    for field in [
        "business_id",
        "created_at",
        "email",
        "name",
        "phone_number",
        "metadata",
        "blocked_at",
        "preferred_locale",
    ] {
        assert!(
            created.json.get(field).is_some(),
            "{field} missing from {}",
            created.text
        );
    }
    let fetched = server.get(&format!("/customers/{id}")).await;
    assert_eq!(fetched.expect(200).json, created.json);
    assert_eq!(created.json["preferred_locale"], Value::Null);
    let bob = server
        .post(
            "/customers",
            json!({"email": "bob@example.com", "name": "Bob", "preferred_locale": "fr"}),
        )
        .await;
    assert_eq!(bob.expect(201).json["preferred_locale"], "fr");
    let bob_id = bob.json["customer_id"].as_str().unwrap();
    let fetched = server.get(&format!("/customers/{bob_id}")).await;
    assert_eq!(fetched.expect(200).json["preferred_locale"], "fr");
    let refused = server
        .post(
            "/customers",
            json!({"email": "eve@example.com", "name": "Eve", "preferred_locale": "xx"}),
        )
        .await;
    assert!(
        refused.expect(400).text.contains("preferred_locale"),
        "{}",
        refused.text
    );
    let all = server.get("/customers").await;
    assert_eq!(all.expect(200).json["items"].as_array().unwrap().len(), 2);
    // Found whatever the case of the ASCII letters typed, alike on both backends.
    for typed in ["bob@example.com", "Bob@Example.COM"] {
        let filtered = server.get(&format!("/customers?email={typed}")).await;
        assert_eq!(filtered.json["items"][0]["name"], "Bob", "{typed}");
        assert_eq!(filtered.json["items"].as_array().unwrap().len(), 1);
    }
    server
        .post(
            "/customers",
            json!({"email": "zoë@example.com", "name": "Zoë"}),
        )
        .await
        .expect(201);
    for (typed, found) in [("ZOë@EXAMPLE.com", 1), ("zoË@example.com", 0)] {
        let filtered = server.get(&format!("/customers?email={typed}")).await;
        assert_eq!(
            filtered.json["items"].as_array().unwrap().len(),
            found,
            "{typed}"
        );
    }
    server.get("/customers/cus_nope").await.expect(404);
    let bad = server
        .post("/customers", json!({"email": "not-an-email", "name": "X"}))
        .await;
    assert!(bad.expect(400).message().contains("email"));
}

async fn products_carry_license_key_defaults(server: TestServer) {
    let created = server
        .post("/products", json!({"name": "Editor", "description": "An editor", "license_key_activations_limit": 3,
            "license_key_duration": {"count": 1, "interval": "Year"}, "license_key_activation_message": "Welcome"}))
        .await;
    created.expect(201);
    let id = created.json["product_id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("pdt_"));
    assert_eq!(
        created.json["license_key_duration"],
        json!({"count": 1, "interval": "Year"})
    );
    assert_eq!(created.json["license_key_enabled"], json!(true));
    assert!(created.json["brand_id"].as_str().is_some());

    let patched = server
        .patch(
            &format!("/products/{id}"),
            json!({"license_key_duration": null, "license_key_activations_limit": 5}),
        )
        .await;
    patched.expect(200);
    assert_eq!(patched.json["license_key_duration"], Value::Null);
    assert_eq!(patched.json["license_key_activations_limit"], json!(5));
    assert_eq!(
        patched.json["description"], "An editor",
        "absent fields are unchanged"
    );
    assert_eq!(
        server
            .get(&format!("/products/{id}"))
            .await
            .expect(200)
            .json,
        patched.json
    );
    assert_eq!(
        server.get("/products").await.json["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    server
        .patch("/products/pdt_nope", json!({"name": "x"}))
        .await
        .expect(404);
    let bad = server
        .post(
            "/products",
            json!({"name": "x", "license_key_duration": {"count": 0, "interval": "Day"}}),
        )
        .await;
    assert!(bad.expect(400).message().contains("license_key_duration"));
    let bad = server
        .post(
            "/products",
            json!({"name": "x", "license_key_duration": {"count": 1, "interval": "Fortnight"}}),
        )
        .await;
    assert!(bad.expect(400).message().contains("interval"));
}

fn recurring_price() -> Value {
    json!({"type": "recurring_price", "currency": "EUR", "price": 1200,
        "payment_frequency_count": 1, "payment_frequency_interval": "Month",
        "subscription_period_count": 20, "subscription_period_interval": "Year",
        "trial_period_days": 14, "tax_inclusive": true})
}

async fn products_take_dodos_price_and_descriptive_fields(server: TestServer) {
    // Without Dodo's fields: the documented defaults, which Dodo's strict decoders accept.
    let plain = server.post("/products", json!({"name": "Plain"})).await;
    plain.expect(201);
    let price = &plain.json["price"];
    assert_eq!(
        (&price["type"], &price["currency"], &price["price"]),
        (&json!("one_time_price"), &json!("USD"), &json!(0))
    );
    assert_eq!(plain.json["tax_category"], "saas");
    assert_eq!(plain.json["is_recurring"], false);
    assert_eq!(plain.json["license_key_enabled"], true);
    assert_eq!(plain.json["credit_entitlements"], json!([]));
    assert_eq!(plain.json["entitlements"], json!([]));
    for field in [
        "addons",
        "image",
        "digital_product_delivery",
        "pricing_mode",
        "product_collection_id",
    ] {
        assert_eq!(plain.json.get(field), Some(&Value::Null), "{field}");
    }

    let brand = plain.json["brand_id"].clone();
    let created = server
        .post(
            "/products",
            json!({"name": "Pro", "price": recurring_price(), "tax_category": "edtech",
                "addons": ["adn_1"], "brand_id": brand, "image": "https://cdn.example.com/pro.png",
                "digital_product_delivery": {"external_url": "https://example.com/get", "instructions": "Sign in"},
                "pricing_mode": "by_country", "license_key_enabled": false,
                "entitlements": [], "credit_entitlements": [],
                "license_key_activations_limit": 2}),
        )
        .await;
    created.expect(201);
    let id = created.json["product_id"].as_str().unwrap().to_owned();
    for (field, value) in recurring_price().as_object().unwrap() {
        assert_eq!(&created.json["price"][field], value, "price.{field}");
    }
    assert_eq!(created.json["is_recurring"], true);
    assert_eq!(created.json["tax_category"], "edtech");
    assert_eq!(created.json["addons"], json!(["adn_1"]));
    assert_eq!(created.json["image"], "https://cdn.example.com/pro.png");
    assert_eq!(
        created.json["digital_product_delivery"],
        json!({"files": [], "external_url": "https://example.com/get", "instructions": "Sign in"})
    );
    assert_eq!(created.json["pricing_mode"], "by_country");
    assert_eq!(created.json["license_key_enabled"], false);
    assert_eq!(created.json["license_key_activations_limit"], 2);
    let path = format!("/products/{id}");
    assert_eq!(server.get(&path).await.expect(200).json, created.json);

    // A PATCH changes what it names: null clears what can be cleared and leaves the
    // price, tax category and flag as they are.
    let patched = server
        .patch(
            &path,
            json!({"price": {"type": "usage_based_price", "currency": "USD", "fixed_price": 300,
                    "payment_frequency_count": 1, "payment_frequency_interval": "Month",
                    "subscription_period_count": 1, "subscription_period_interval": "Year",
                    "meters": [{"meter_id": "mtr_1", "price_per_unit": "0.5"}]},
                "tax_category": null, "addons": null, "image": null, "pricing_mode": "by_currency",
                "digital_product_delivery": {"instructions": "Check your email", "files": []},
                "entitlements": []}),
        )
        .await;
    patched.expect(200);
    assert_eq!(patched.json["price"]["type"], "usage_based_price");
    assert_eq!(patched.json["price"]["meters"][0]["meter_id"], "mtr_1");
    assert_eq!(patched.json["is_recurring"], true);
    assert_eq!(patched.json["tax_category"], "edtech", "null leaves it");
    assert_eq!(patched.json["addons"], Value::Null);
    assert_eq!(patched.json["image"], Value::Null);
    assert_eq!(patched.json["pricing_mode"], "by_currency");
    assert_eq!(
        patched.json["digital_product_delivery"],
        json!({"files": [], "external_url": null, "instructions": "Check your email"})
    );
    assert_eq!(patched.json["license_key_enabled"], false);
    assert_eq!(patched.json["license_key_activations_limit"], 2);
    assert_eq!(server.get(&path).await.json, patched.json);

    // Lists answer Dodo's ProductListResponse: the amount as `price`, the object as
    // `price_detail`.
    let listed = server.get("/products").await;
    let items = listed.expect(200).json["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 2);
    assert_eq!(items[0]["price"], 0);
    assert_eq!(items[0]["currency"], "USD");
    assert_eq!(items[0]["is_recurring"], false);
    let pro = &items[1];
    assert_eq!(pro["product_id"], id.as_str());
    assert_eq!(
        pro["price"], 300,
        "a usage-based price lists its fixed part"
    );
    assert_eq!(pro["currency"], "USD");
    assert_eq!(pro["price_detail"], patched.json["price"]);
    assert_eq!(pro["tax_category"], "edtech");
    assert_eq!(pro["pricing_mode"], "by_currency");
    assert_eq!(pro["tax_inclusive"], Value::Null);
    assert_eq!(pro["entitlements"], json!([]));
    assert_eq!(pro["name"], "Pro");

    // A product made before these fields were kept answers the defaults.
    server
        .database
        .execute(&format!(
            "UPDATE products SET details = NULL WHERE id = '{id}'"
        ))
        .await;
    let old = server.get(&path).await;
    assert_eq!(old.expect(200).json["price"], plain.json["price"]);
    assert_eq!(old.json["tax_category"], "saas");
    assert_eq!(old.json["license_key_enabled"], true);
    assert_eq!(old.json["license_key_activations_limit"], 2);
}

async fn products_refuse_what_dodos_schema_refuses(server: TestServer) {
    let one_time = |extra: Value| {
        let mut price = json!({"type": "one_time_price", "currency": "USD", "price": 100});
        price
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        json!({"name": "P", "price": price})
    };
    let bad = [
        (json!({"name": "P", "price": 100}), "price"),
        (
            json!({"name": "P", "price": {"currency": "USD", "price": 1}}),
            "type",
        ),
        (one_time(json!({"type": "free"})), "free"),
        (one_time(json!({"currency": "XYZ"})), "price.currency"),
        (one_time(json!({"price": -1})), "price.price"),
        (one_time(json!({"price": "100"})), "price.price"),
        (one_time(json!({"discount": 101})), "price.discount"),
        (
            one_time(json!({"discount_bps": 10001})),
            "price.discount_bps",
        ),
        (
            one_time(json!({"trial_period_days": 7})),
            "trial_period_days",
        ),
        (
            json!({"name": "P", "price": {"type": "recurring_price", "currency": "USD", "price": 1}}),
            "payment_frequency_count",
        ),
        (
            json!({"name": "P", "tax_category": "groceries"}),
            "tax_category",
        ),
        (
            json!({"name": "P", "pricing_mode": "by_planet"}),
            "pricing_mode",
        ),
        (json!({"name": "P", "addons": [""]}), "addons"),
        (json!({"name": "P", "image": "not a url"}), "image"),
        (
            json!({"name": "P", "license_key_enabled": "yes"}),
            "license_key_enabled",
        ),
        (
            json!({"name": "P", "digital_product_delivery": {"external_url": "javascript:alert(1)"}}),
            "digital_product_delivery.external_url",
        ),
        (
            json!({"name": "P", "entitlements": [{"id": "ent_1"}]}),
            "entitlements",
        ),
        (
            json!({"name": "P", "credit_entitlements": [{"credit_entitlement_id": "cde_1", "credits_amount": "-3"}]}),
            "credits_amount",
        ),
        // serde would read a struct from an array of its fields' values.
        (
            json!({"name": "P", "price": ["one_time_price", "USD", 5]}),
            "price",
        ),
        (
            json!({"name": "P", "digital_product_delivery": [null, null]}),
            "digital_product_delivery",
        ),
        (
            json!({"name": "P", "license_key_duration": [1, "Day"]}),
            "license_key_duration",
        ),
        (
            json!({"name": "P", "entitlements": [["ent_1"]]}),
            "entitlements",
        ),
        (
            json!({"name": "P", "price": {"type": "usage_based_price", "currency": "USD",
                "fixed_price": 1, "payment_frequency_count": 1, "payment_frequency_interval": "Month",
                "subscription_period_count": 1, "subscription_period_interval": "Year",
                "meters": [["mtr_1"]]}}),
            "price.meters",
        ),
    ];
    for (body, field) in bad {
        let reply = server.post("/products", body.clone()).await;
        assert!(
            reply.expect(400).message().contains(field),
            "{body}: {}",
            reply.text
        );
    }
    // Well-formed references to what this server does not have: 422, naming the field.
    let unknown = [
        (json!({"name": "P", "brand_id": "brnd_other"}), "brand_id"),
        (
            json!({"name": "P", "entitlements": [{"entitlement_id": "ent_1"}]}),
            "entitlements",
        ),
        (
            json!({"name": "P", "credit_entitlements": [{"credit_entitlement_id": "cde_1", "credits_amount": "10"}]}),
            "credit_entitlements",
        ),
        (
            json!({"name": "P", "digital_product_delivery": {"files": ["file_1"]}}),
            "files",
        ),
    ];
    for (body, field) in unknown {
        let reply = server.post("/products", body.clone()).await;
        assert!(
            reply.expect(422).message().contains(field),
            "{body}: {}",
            reply.text
        );
    }
    assert_eq!(
        server.get("/products").await.json["items"],
        json!([]),
        "nothing was written"
    );

    let id = product(&server, json!({"name": "P"})).await;
    let path = format!("/products/{id}");
    let before = server.get(&path).await.json;
    let reply = server
        .patch(
            &path,
            json!({"price": {"type": "one_time_price", "currency": "USD"}}),
        )
        .await;
    assert!(reply.expect(400).message().contains("price"));
    let reply = server
        .patch(
            &path,
            json!({"entitlements": [{"entitlement_id": "ent_1"}]}),
        )
        .await;
    assert!(reply.expect(422).message().contains("entitlements"));
    assert_eq!(server.get(&path).await.json, before, "nothing was written");
}

async fn keys_are_generated_or_imported_with_the_products_defaults(server: TestServer) {
    let generated = issue(&server, json!({"license_key_activations_limit": 3, "license_key_duration": {"count": 30, "interval": "Day"}}), json!({})).await;
    generated.expect(201);
    let key = &generated.json;
    assert!(key["id"].as_str().unwrap().starts_with("lic_"));
    assert_eq!(key["source"], "manual");
    assert_eq!(key["status"], "active");
    assert_eq!(key["activations_limit"], json!(3));
    assert_eq!(key["instances_count"], json!(0));
    assert_eq!(key["payment_id"], Value::Null);
    assert_eq!(key["subscription_id"], Value::Null);
    for field in [
        "brand_id",
        "business_id",
        "created_at",
        "customer_id",
        "product_id",
        "expires_at",
    ] {
        assert!(
            key.get(field).is_some_and(|v| !v.is_null()),
            "{field} in {key}"
        );
    }
    let text = key["key"].as_str().unwrap();
    assert_eq!(text.len(), 29);
    assert!(text.split('-').all(|g| {
        g.len() == 5
            && g.chars()
                .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase())
    }));
    let created = chrono_like(key["created_at"].as_str().unwrap());
    let expires = chrono_like(key["expires_at"].as_str().unwrap());
    assert_eq!(
        (expires - created) / 86_400,
        30,
        "expiry is creation plus the product's duration"
    );

    let imported = issue(&server, json!({"license_key_activations_limit": 3}), json!({"key": "MY-OWN-KEY-1", "activations_limit": null, "expires_at": null, "payment_id": "pay_1", "subscription_id": "sub_1"})).await;
    imported.expect(201);
    assert_eq!(imported.json["source"], "import");
    assert_eq!(imported.json["key"], "MY-OWN-KEY-1");
    assert_eq!(
        imported.json["activations_limit"],
        Value::Null,
        "null means unlimited"
    );
    assert_eq!(imported.json["expires_at"], Value::Null);
    assert_eq!(imported.json["subscription_id"], "sub_1");

    let fetched = server
        .get(&format!(
            "/license_keys/{}",
            imported.json["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(fetched.expect(200).json, imported.json);
    server.get("/license_keys/lic_nope").await.expect(404);
    let past = issue(
        &server,
        json!({}),
        json!({"expires_at": "2020-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(past.expect(201).json["status"], "expired");

    let customer_id = customer(&server).await;
    let unknown_product = server
        .post(
            "/license_keys",
            json!({"customer_id": customer_id, "product_id": "pdt_nope"}),
        )
        .await;
    unknown_product.expect(404);
    let product_id = product(&server, json!({"name": "P"})).await;
    let unknown_customer = server
        .post(
            "/license_keys",
            json!({"customer_id": "cus_nope", "product_id": product_id}),
        )
        .await;
    unknown_customer.expect(404);
}

/// Seconds since the epoch of an RFC 3339 UTC instant, without a date library in tests.
fn chrono_like(text: &str) -> i64 {
    licensed::domain::time::Timestamp::parse(text)
        .unwrap()
        .micros()
        / 1_000_000
}

async fn duplicate_keys_are_409_across_businesses(server: TestServer) {
    issue(&server, json!({}), json!({"key": "SHARED-KEY"}))
        .await
        .expect(201);
    let again = issue(&server, json!({}), json!({"key": "SHARED-KEY"})).await;
    again.expect(409);
    assert_eq!(again.header("x-should-retry"), Some("false"));
    assert_eq!(again.json["code"], "CONFLICT");
    for padded in ["   ", " SHARED-KEY", "PADDED-KEY "] {
        let refused = issue(&server, json!({}), json!({ "key": padded })).await;
        assert!(
            refused.expect(400).text.contains("whitespace"),
            "{}",
            refused.text
        );
    }

    let other = server.new_key("beta", false).await;
    let customer = server
        .call(
            Method::POST,
            "/customers",
            &other,
            Some(json!({"email": "x@y.z", "name": "X"})),
        )
        .await;
    let product = server
        .call(
            Method::POST,
            "/products",
            &other,
            Some(json!({"name": "P"})),
        )
        .await;
    let import = async |key: &str| {
        let body = json!({"customer_id": customer.json["customer_id"], "product_id": product.json["product_id"], "key": key});
        (server.call(Method::POST, "/license_keys", &other, Some(body))).await
    };
    import("SHARED-KEY").await.expect(409);
    // Nor is a generated key as its customers might type it: as typed it would be found
    // first, and take their activations.
    let generated = issue(&server, json!({}), json!({})).await;
    let text = generated.json["key"].as_str().unwrap().to_owned();
    for typed in [text.to_ascii_lowercase(), text.replace('1', "I")] {
        if typed == text {
            continue;
        }
        let shadow = import(&typed).await;
        assert!(
            shadow.expect(409).message().contains("might type it"),
            "{}",
            shadow.text
        );
    }
    // Nor the other way round: a key of the generated shape whose small letters another
    // business imported first.
    let squatted = "7qk2m-9xd4t-abcde-fghjk-mnpqr";
    import(squatted).await.expect(201);
    let upper = squatted.to_ascii_uppercase();
    let refused = issue(&server, json!({}), json!({ "key": upper })).await;
    assert!(
        refused.expect(409).message().contains("might type it"),
        "{}",
        refused.text
    );
}

async fn keys_list_with_every_filter_and_page(server: TestServer) {
    let a = issue(&server, json!({}), json!({"key": "K-A"})).await;
    let b = issue(
        &server,
        json!({}),
        json!({"key": "K-B", "expires_at": "2020-01-01T00:00:00Z"}),
    )
    .await;
    let c = issue(&server, json!({}), json!({})).await;
    let c_id = c.json["id"].as_str().unwrap().to_owned();
    server
        .patch(&format!("/license_keys/{c_id}"), json!({"disabled": true}))
        .await
        .expect(200);

    let ids = |reply: &Reply| -> Vec<String> {
        reply.json["items"]
            .as_array()
            .unwrap()
            .iter()
            .map(|k| k["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let id = |r: &Reply| r.json["id"].as_str().unwrap().to_owned();
    let all = server.get("/license_keys").await;
    assert_eq!(ids(&all), [id(&a), id(&b), c_id.clone()], "oldest first");
    assert_eq!(
        ids(&server.get("/license_keys?status=active").await),
        [id(&a)]
    );
    assert_eq!(
        ids(&server.get("/license_keys?status=expired").await),
        [id(&b)]
    );
    assert_eq!(
        ids(&server.get("/license_keys?status=disabled").await),
        [c_id.as_str()]
    );
    assert_eq!(
        ids(&server.get("/license_keys?source=manual").await),
        [c_id.as_str()]
    );
    assert_eq!(
        ids(&server.get("/license_keys?source=import").await).len(),
        2
    );
    let customer_of_a = a.json["customer_id"].as_str().unwrap();
    assert_eq!(
        ids(&server
            .get(&format!("/license_keys?customer_id={customer_of_a}"))
            .await),
        [id(&a)]
    );
    let product_of_b = b.json["product_id"].as_str().unwrap();
    assert_eq!(
        ids(&server
            .get(&format!("/license_keys?product_id={product_of_b}"))
            .await),
        [id(&b)]
    );
    let created_b = b.json["created_at"].as_str().unwrap().replace('+', "%2B");
    assert_eq!(
        ids(&server
            .get(&format!("/license_keys?created_at_gte={created_b}"))
            .await),
        [id(&b), c_id.clone()]
    );
    assert_eq!(
        ids(&server
            .get(&format!("/license_keys?created_at_lte={created_b}"))
            .await),
        [id(&a), id(&b)]
    );

    // Pages count from 0, as in Dodo's API reference: absent and 0 are the first page.
    assert_eq!(
        ids(&server.get("/license_keys?page_size=2").await),
        [id(&a), id(&b)]
    );
    assert_eq!(
        ids(&server.get("/license_keys?page_size=2&page_number=0").await),
        [id(&a), id(&b)]
    );
    assert_eq!(
        ids(&server.get("/license_keys?page_size=2&page_number=1").await),
        [c_id.as_str()]
    );
    assert!(ids(&server.get("/license_keys?page_size=2&page_number=2").await).is_empty());
    // Dodo's Python and JavaScript clients count from 1 and say so in X-Stainless-Lang:
    // absent, 0 and 1 are then the first page, 2 the second.
    for lang in ["python", "js"] {
        let page = |number: &str| {
            let query = match number {
                "" => "page_size=2".to_owned(),
                n => format!("page_size=2&page_number={n}"),
            };
            server
                .client
                .get(format!("{}/license_keys?{query}", server.url))
                .bearer_auth(&server.key)
                .header("X-Stainless-Lang", lang)
                .send()
        };
        for first in ["", "0", "1"] {
            let reply = Reply::from(page(first).await.unwrap()).await;
            assert_eq!(ids(&reply), [id(&a), id(&b)], "{lang}, page {first:?}");
        }
        let second = Reply::from(page("2").await.unwrap()).await;
        assert_eq!(ids(&second), [c_id.as_str()], "{lang}");
        let third = Reply::from(page("3").await.unwrap()).await;
        assert!(ids(&third).is_empty(), "{lang}");
    }

    for bad in [
        "page_size=0",
        "page_size=101",
        "page_size=99999999999999999999",
        "page_number=100001",
        "page_number=99999999999999999999",
    ] {
        server
            .get(&format!("/license_keys?{bad}"))
            .await
            .expect(422);
    }
    for bad in ["page_size=ten", "page_number=1.5"] {
        server
            .get(&format!("/license_keys?{bad}"))
            .await
            .expect(400);
    }
    server.get("/license_keys?page_size=100").await.expect(200);
    assert!(
        server
            .get("/license_keys?status=lost")
            .await
            .expect(400)
            .message()
            .contains("status")
    );
    assert!(
        server
            .get("/license_keys?source=stolen")
            .await
            .expect(400)
            .message()
            .contains("source")
    );
    assert!(
        server
            .get("/license_keys?created_at_gte=yesterday")
            .await
            .expect(400)
            .message()
            .contains("created_at_gte")
    );
    assert!(
        server
            .get("/license_keys?page_number=-1")
            .await
            .expect(422)
            .message()
            .contains("page_number")
    );
}

async fn patch_is_tri_state_with_its_error_codes(server: TestServer) {
    let key = issue(&server, json!({"license_key_activations_limit": 2, "license_key_duration": {"count": 1, "interval": "Year"}}), json!({})).await;
    let id = key.json["id"].as_str().unwrap().to_owned();
    let path = format!("/license_keys/{id}");
    let text = key.json["key"].as_str().unwrap().to_owned();

    let unchanged = server.patch(&path, json!({})).await;
    assert_eq!(unchanged.expect(200).json, key.json);
    let cleared = server
        .patch(
            &path,
            json!({"activations_limit": null, "expires_at": null}),
        )
        .await;
    cleared.expect(200);
    assert_eq!(cleared.json["activations_limit"], Value::Null);
    assert_eq!(cleared.json["expires_at"], Value::Null);
    let set = server
        .patch(
            &path,
            json!({"activations_limit": 3, "expires_at": "2099-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(set.expect(200).json["activations_limit"], json!(3));
    assert_eq!(set.json["expires_at"], "2099-01-01T00:00:00Z");

    for name in ["a", "b"] {
        public(
            &server,
            "activate",
            json!({"license_key": text, "name": name}),
        )
        .await
        .expect(201);
    }
    let below = server.patch(&path, json!({"activations_limit": 1})).await;
    below.expect(422);
    assert_eq!(
        below.json["code"],
        "ACTIVATION_LIMIT_LESS_THAN_CURRENT_AMOUNT"
    );
    server
        .patch(&path, json!({"activations_limit": 2}))
        .await
        .expect(200);

    let disabled = server.patch(&path, json!({"disabled": true})).await;
    assert_eq!(disabled.expect(200).json["status"], "disabled");
    let expired = server
        .patch(
            &path,
            json!({"disabled": false, "expires_at": "2001-01-01T00:00:00Z"}),
        )
        .await;
    assert_eq!(expired.expect(200).json["status"], "expired");

    let missing = server
        .patch("/license_keys/lic_nope", json!({"disabled": true}))
        .await;
    missing.expect(404);
    assert_eq!(missing.json["code"], "LICENSE_KEY_NOT_FOUND");

    let subscription = issue(&server, json!({}), json!({"subscription_id": "sub_9"})).await;
    let sub_path = format!(
        "/license_keys/{}",
        subscription.json["id"].as_str().unwrap()
    );
    let refused = server
        .patch(&sub_path, json!({"expires_at": "2030-01-01T00:00:00Z"}))
        .await;
    refused.expect(400);
    assert_eq!(
        refused.json["code"],
        "NO_EXPIRY_ON_SUBSCRIPTION_LICENSE_KEYS"
    );
    server
        .patch(&sub_path, json!({"expires_at": null}))
        .await
        .expect(200);
    // A product's duration does not give a subscription's key an expiry, which no PATCH
    // could then change.
    let monthly = json!({"license_key_duration": {"count": 1, "interval": "Month"}});
    let renewing = issue(&server, monthly, json!({"subscription_id": "sub_11"})).await;
    assert_eq!(renewing.expect(201).json["expires_at"], Value::Null);
    let created_with_expiry = issue(
        &server,
        json!({}),
        json!({"subscription_id": "sub_10", "expires_at": "2030-01-01T00:00:00Z"}),
    )
    .await;
    assert_eq!(
        created_with_expiry.expect(400).json["code"],
        "NO_EXPIRY_ON_SUBSCRIPTION_LICENSE_KEYS"
    );

    // Every limit out of range is told the range a key's limit takes, in a client's
    // words, not Rust's (`u32`).
    for wrong in [
        json!(-1),
        json!(1.5),
        json!(1_000_001),
        json!(5_000_000_000_u64),
    ] {
        let reply = server
            .patch(&path, json!({"activations_limit": wrong}))
            .await;
        assert_eq!(
            reply.expect(400).message(),
            format!(
                "invalid `activations_limit`: must be a whole number from 0 to 1000000, got {wrong}"
            )
        );
    }
    let unchanged = server.get(&path).await;
    assert_eq!(unchanged.expect(200).json["activations_limit"], 2);
    let text = server.patch(&path, json!({"activations_limit": "3"})).await;
    assert!(text.expect(400).message().contains("activations_limit"));
    let unknown = server.patch(&path, json!({"status": "active"})).await;
    assert!(unknown.expect(400).message().contains("status"));
}

/// Customers type keys: a generated key in small letters (with `o` for `0`, as Crockford's
/// decoding reads it), or pasted with spaces around it, is the key they meant. A key
/// found as typed is not read otherwise, and other text stays unknown.
async fn a_generated_key_typed_in_small_letters_or_with_spaces_is_found(server: TestServer) {
    let key = issue(&server, json!({}), json!({})).await;
    let text = key.json["key"].as_str().unwrap().to_owned();
    let typed = text.to_ascii_lowercase().replace('0', "o");
    let activated = public(
        &server,
        "activate",
        json!({"license_key": typed, "name": "a"}),
    )
    .await;
    activated.expect(201);
    assert_eq!(activated.json["license_key_id"], key.json["id"]);
    let instance = activated.json["id"].as_str().unwrap().to_owned();
    for typed in [typed.clone(), format!(" {text}  "), format!("{typed} ")] {
        let valid = public(&server, "validate", json!({"license_key": typed})).await;
        assert_eq!(valid.expect(200).json, json!({"valid": true}), "{typed:?}");
    }
    let file = server
        .call(
            Method::POST,
            "/licenses/license_file",
            "",
            Some(json!({"license_key": typed})),
        )
        .await;
    file.expect(200);
    let deactivated = public(
        &server,
        "deactivate",
        json!({"license_key": typed, "license_key_instance_id": instance}),
    )
    .await;
    deactivated.expect(200);

    // An imported key in small letters is a key of its own, found as typed.
    let imported_text = "abcde-fghjk-mnpqr-stvwx-yz012";
    let imported = issue(&server, json!({}), json!({"key": imported_text})).await;
    imported.expect(201);
    let found = public(
        &server,
        "activate",
        json!({"license_key": imported_text, "name": "b"}),
    )
    .await;
    assert_eq!(
        found.expect(201).json["license_key_id"],
        imported.json["id"]
    );
    // Its capitals name no key; another group of letters names none either.
    for unknown in [
        imported_text.to_ascii_uppercase(),
        format!("ZZZZZ{}", &text[5..]),
    ] {
        public(&server, "validate", json!({"license_key": unknown}))
            .await
            .expect(404);
    }
    // Its capitals cannot be a key too: customers typing that key in small letters would
    // find this one, and take its activations.
    let capitals = imported_text.to_ascii_uppercase();
    let upper = issue(&server, json!({}), json!({"key": capitals})).await;
    assert!(
        upper.expect(409).message().contains("might type it"),
        "{}",
        upper.text
    );
}

async fn activate_validate_deactivate(server: TestServer) {
    let key = issue(
        &server,
        json!({"license_key_activations_limit": 2}),
        json!({}),
    )
    .await;
    let text = key.json["key"].as_str().unwrap().to_owned();
    let id = key.json["id"].as_str().unwrap().to_owned();

    let activated = public(
        &server,
        "activate",
        json!({"license_key": text, "name": "laptop"}),
    )
    .await;
    activated.expect(201);
    let instance = activated.json["id"].as_str().unwrap().to_owned();
    assert!(instance.starts_with("lki_"));
    assert_eq!(activated.json["license_key_id"], id.as_str());
    assert_eq!(activated.json["name"], "laptop");
    assert_eq!(activated.json["customer"]["email"], "ada@example.com");
    assert_eq!(activated.json["customer"]["name"], "Ada");
    assert_eq!(
        activated.json["customer"]["customer_id"],
        key.json["customer_id"]
    );
    assert_eq!(
        activated.json["product"],
        json!({"product_id": key.json["product_id"], "name": "Editor Pro"})
    );

    let fetched = server.get(&format!("/license_keys/{id}")).await;
    assert_eq!(fetched.json["instances_count"], json!(1));

    let valid = public(&server, "validate", json!({"license_key": text})).await;
    assert_eq!(valid.expect(200).json, json!({"valid": true}));
    let with_instance = public(
        &server,
        "validate",
        json!({"license_key": text, "license_key_instance_id": instance}),
    )
    .await;
    assert_eq!(with_instance.json, json!({"valid": true}));
    let other_instance = public(
        &server,
        "validate",
        json!({"license_key": text, "license_key_instance_id": "lki_other"}),
    )
    .await;
    assert_eq!(other_instance.expect(200).json, json!({"valid": false}));
    let unknown = public(&server, "validate", json!({"license_key": "NOPE"})).await;
    assert_eq!(unknown.expect(404).json["code"], "LICENSE_KEY_NOT_FOUND");

    let gone = public(
        &server,
        "deactivate",
        json!({"license_key": text, "license_key_instance_id": instance}),
    )
    .await;
    gone.expect(200);
    assert!(
        gone.text.is_empty(),
        "deactivate answers an empty body: {}",
        gone.text
    );
    assert_eq!(
        server.get(&format!("/license_keys/{id}")).await.json["instances_count"],
        json!(0)
    );
    let after = public(
        &server,
        "validate",
        json!({"license_key": text, "license_key_instance_id": instance}),
    )
    .await;
    assert_eq!(
        after.json,
        json!({"valid": false}),
        "a deactivated instance is no longer valid"
    );
    let twice = public(
        &server,
        "deactivate",
        json!({"license_key": text, "license_key_instance_id": instance}),
    )
    .await;
    assert_eq!(twice.expect(404).json["code"], "LICENSE_KEY_NOT_FOUND");
    // The key is known: the message says the instance is what was not found.
    assert!(
        twice.message().contains("no current activation"),
        "{}",
        twice.text
    );
    assert_eq!(unknown.message(), "license key not found");
    public(
        &server,
        "deactivate",
        json!({"license_key": "NOPE", "license_key_instance_id": instance}),
    )
    .await
    .expect(404);

    // An instance of another key cannot be deactivated through this one.
    let other = issue(&server, json!({}), json!({})).await;
    let other_text = other.json["key"].as_str().unwrap();
    let theirs = public(
        &server,
        "activate",
        json!({"license_key": other_text, "name": "x"}),
    )
    .await;
    let theirs_id = theirs.json["id"].as_str().unwrap();
    public(
        &server,
        "deactivate",
        json!({"license_key": text, "license_key_instance_id": theirs_id}),
    )
    .await
    .expect(404);

    server
        .patch(&format!("/license_keys/{id}"), json!({"disabled": true}))
        .await
        .expect(200);
    assert_eq!(
        public(&server, "validate", json!({"license_key": text}))
            .await
            .json,
        json!({"valid": false})
    );
}

async fn activation_refusals(server: TestServer) {
    let key = issue(
        &server,
        json!({"license_key_activations_limit": 1}),
        json!({}),
    )
    .await;
    let text = key.json["key"].as_str().unwrap().to_owned();
    public(
        &server,
        "activate",
        json!({"license_key": text, "name": "one"}),
    )
    .await
    .expect(201);
    let full = public(
        &server,
        "activate",
        json!({"license_key": text, "name": "two"}),
    )
    .await;
    full.expect(422);
    assert_eq!(full.json["code"], "LICENSE_KEY_LIMIT_REACHED");

    let expired = issue(
        &server,
        json!({}),
        json!({"expires_at": "2020-01-01T00:00:00Z"}),
    )
    .await;
    let refused = public(
        &server,
        "activate",
        json!({"license_key": expired.json["key"], "name": "x"}),
    )
    .await;
    refused.expect(403);
    assert_eq!(refused.json["code"], "INACTIVE_LICENSE_KEY");

    let disabled = issue(&server, json!({}), json!({})).await;
    server
        .patch(
            &format!("/license_keys/{}", disabled.json["id"].as_str().unwrap()),
            json!({"disabled": true}),
        )
        .await
        .expect(200);
    let refused = public(
        &server,
        "activate",
        json!({"license_key": disabled.json["key"], "name": "x"}),
    )
    .await;
    assert_eq!(refused.expect(403).json["code"], "INACTIVE_LICENSE_KEY");

    let unknown = public(
        &server,
        "activate",
        json!({"license_key": "NO-SUCH-KEY", "name": "x"}),
    )
    .await;
    assert_eq!(unknown.expect(404).json["code"], "LICENSE_KEY_NOT_FOUND");

    let unlimited = issue(&server, json!({}), json!({})).await;
    for i in 0..5 {
        public(
            &server,
            "activate",
            json!({"license_key": unlimited.json["key"], "name": format!("m{i}")}),
        )
        .await
        .expect(201);
    }
}

async fn instances_are_listed_retrieved_and_renamed(server: TestServer) {
    let key = issue(&server, json!({}), json!({})).await;
    let id = key.json["id"].as_str().unwrap().to_owned();
    let mut instances = Vec::new();
    for name in ["a", "b", "c"] {
        let r = public(
            &server,
            "activate",
            json!({"license_key": key.json["key"], "name": name}),
        )
        .await;
        instances.push(r.json["id"].as_str().unwrap().to_owned());
    }
    let other = issue(&server, json!({}), json!({})).await;
    public(
        &server,
        "activate",
        json!({"license_key": other.json["key"], "name": "elsewhere"}),
    )
    .await
    .expect(201);

    let listed = server
        .get(&format!("/license_key_instances?license_key_id={id}"))
        .await;
    let names: Vec<_> = listed.expect(200).json["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["name"].clone())
        .collect();
    assert_eq!(names, [json!("a"), json!("b"), json!("c")]);
    assert_eq!(
        server.get("/license_key_instances").await.json["items"]
            .as_array()
            .unwrap()
            .len(),
        4
    );
    let page = server
        .get(&format!(
            "/license_key_instances?license_key_id={id}&page_size=2&page_number=1"
        ))
        .await;
    assert_eq!(page.json["items"].as_array().unwrap().len(), 1);
    let from_js = server
        .client
        .get(format!(
            "{}/license_key_instances?license_key_id={id}&page_size=2&page_number=2",
            server.url
        ))
        .bearer_auth(&server.key)
        .header("X-Stainless-Lang", "js")
        .send()
        .await
        .unwrap();
    let from_js = Reply::from(from_js).await;
    assert_eq!(from_js.json["items"], page.json["items"]);

    let one = server
        .get(&format!("/license_key_instances/{}", instances[0]))
        .await;
    one.expect(200);
    let fields: HashSet<_> = one.json.as_object().unwrap().keys().cloned().collect();
    assert_eq!(
        fields,
        [
            "id",
            "business_id",
            "created_at",
            "license_key_id",
            "name",
            "fingerprint",
            "last_heartbeat_at",
            "heartbeat_expires_at"
        ]
        .map(String::from)
        .into()
    );
    let renamed = server
        .patch(
            &format!("/license_key_instances/{}", instances[0]),
            json!({"name": "workstation"}),
        )
        .await;
    assert_eq!(renamed.expect(200).json["name"], "workstation");
    server
        .patch("/license_key_instances/lki_nope", json!({"name": "x"}))
        .await
        .expect(404);
    server
        .get("/license_key_instances/lki_nope")
        .await
        .expect(404);
    server
        .patch(
            &format!("/license_key_instances/{}", instances[0]),
            json!({"name": ""}),
        )
        .await
        .expect(400);
}

async fn public_endpoints_ignore_authorization_and_are_rate_limited_per_ip(server: TestServer) {
    let key = issue(&server, json!({}), json!({})).await;
    let with_bad_auth = server
        .call(
            Method::POST,
            "/licenses/validate",
            "lsk_garbage",
            Some(json!({"license_key": key.json["key"]})),
        )
        .await;
    assert_eq!(with_bad_auth.expect(200).json, json!({"valid": true}));

    let limited = TestServer::start_on(
        common::TestDatabase::create(server.backend).await.unwrap(),
        server.backend,
        licensed::http::ServerSettings {
            public_rate_limit: 3,
            ..Default::default()
        },
    )
    .await;
    for _ in 0..3 {
        public(&limited, "validate", json!({"license_key": "X"}))
            .await
            .expect(404);
    }
    let over = public(&limited, "validate", json!({"license_key": "X"})).await;
    over.expect(429);
    assert_eq!(over.json["code"], "RATE_LIMITED");
    let retry: u64 = over.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry));
    // Other routes are not affected by the public limit.
    limited.get("/license_keys").await.expect(200);
    // The header a client could write is ignored unless the server is told to trust it.
    let forwarded = |server: &TestServer, chain: &str| {
        server
            .client
            .post(format!("{}/licenses/validate", server.url))
            .header("x-forwarded-for", chain)
            .json(&json!({"license_key": "X"}))
            .send()
    };
    let status = |reply: reqwest::Response| reply.status().as_u16();
    assert_eq!(
        status(forwarded(&limited, "203.0.113.9").await.unwrap()),
        429
    );

    // Behind a proxy, each client is counted by the last address the proxy's header names.
    let proxied = TestServer::start_on(
        common::TestDatabase::create(server.backend).await.unwrap(),
        server.backend,
        licensed::http::ServerSettings {
            public_rate_limit: 2,
            client_ip_header: Some("x-forwarded-for".parse().unwrap()),
            ..Default::default()
        },
    )
    .await;
    for chain in ["203.0.113.1", "10.9.9.9, 203.0.113.1"] {
        assert_eq!(status(forwarded(&proxied, chain).await.unwrap()), 404);
    }
    assert_eq!(
        status(forwarded(&proxied, "203.0.113.1").await.unwrap()),
        429
    );
    let other = forwarded(&proxied, "203.0.113.1, 2001:db8::2")
        .await
        .unwrap();
    assert_eq!(status(other), 404, "another client has a limit of its own");

    let per_key = TestServer::start_on(
        common::TestDatabase::create(server.backend).await.unwrap(),
        server.backend,
        licensed::http::ServerSettings {
            api_key_rate_limit: 2,
            ..Default::default()
        },
    )
    .await;
    per_key.get("/customers").await.expect(200);
    per_key.get("/customers").await.expect(200);
    per_key.get("/customers").await.expect(429);
    // Routes whose storage call checks the key itself count too, and a write over the
    // limit writes nothing.
    per_key
        .get("/license_quantity?accountId=acme&licenseId=seats")
        .await
        .expect(429);
    let update =
        json!({"accountId": "acme", "licenseId": "seats", "updateType": "ABSOLUTE", "quantity": 1});
    per_key.post("/license_updates", update).await.expect(429);
    let another = per_key.new_key("alpha", false).await;
    per_key
        .call(Method::GET, "/customers", &another, None)
        .await
        .expect(200);
    let same_business = per_key.new_key("default", true).await;
    let written = per_key
        .call(
            Method::GET,
            "/license_updates?accountId=acme",
            &same_business,
            None,
        )
        .await;
    assert_eq!(written.expect(200).json["data"], json!([]));
}

/// A filter a list does not take, or one spelled wrong, is refused by name rather than
/// dropped (which would answer the list unfiltered), on every list, the ledger's too. The
/// page's own parameters and the spellings the routes document still work.
async fn query_parameters_a_route_does_not_take_are_400(server: TestServer) {
    // Every route of the API that declares no query parameter refuses one.
    let document = server.get("/openapi.json").await.json;
    let mut checked = 0;
    for (path, item) in document["paths"].as_object().unwrap() {
        for (method, operation) in item.as_object().unwrap() {
            let parameters = operation["parameters"].as_array().cloned();
            let takes_query = (parameters.unwrap_or_default().iter()).any(|p| p["in"] == "query");
            if operation["security"].is_null() || takes_query {
                continue;
            }
            let concrete: String = (path.split('/'))
                .map(|part| if part.starts_with('{') { "x" } else { part })
                .collect::<Vec<_>>()
                .join("/");
            let method = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let body = (method == Method::POST || method == Method::PATCH).then(|| json!({}));
            let url = format!("{concrete}?zz=1");
            let reply = server.call(method.clone(), &url, &server.key, body).await;
            let message = reply.expect(400).message();
            assert!(
                message.contains("unknown query parameter `zz`"),
                "{method} {path}: {message}"
            );
            checked += 1;
        }
    }
    assert!(checked >= 20, "{checked} routes checked");
    for (path, unknown) in [
        ("/customers?name=Ada", "name"),
        (
            "/customers?email=a@b.c&created_at_gte=2020-01-01T00:00:00Z",
            "created_at_gte",
        ),
        ("/products?recurring=true", "recurring"),
        ("/products?page_size=5&archived=true", "archived"),
        ("/license_keys?customerid=cus_x", "customerid"),
        ("/license_key_instances?grant_id=x", "grant_id"),
        ("/license_updates?accountid=acme", "accountid"),
        ("/license_quantity?accountId=a&licenseId=b&when=now", "when"),
        (
            "/license_usage?accountId=a&licenseId=b&start=2024-03-01T00:00:00Z&end=2024-03-02T00:00:00Z&daily=1",
            "daily",
        ),
        ("/webhooks?cursor=x", "cursor"),
        // The page's parameters belong to the paged lists alone.
        ("/webhooks?page_size=5", "page_size"),
        ("/license_updates?page_size=10", "page_size"),
    ] {
        let reply = server.get(path).await;
        let message = reply.expect(400).message();
        assert!(
            message.contains(&format!("unknown query parameter `{unknown}`")),
            "{path}: {message}"
        );
    }
    for known in [
        "/customers?email=a@b.c&page_size=5&page_number=0",
        "/products?page_size=5",
        "/license_keys?customer_id=cus_x&status=active&page_number=1",
        "/license_key_instances?license_key_id=lic_x",
        "/license_updates?accountId=acme&license_id=seats&pageSize=5",
        "/license_quantity?account_id=a&license_id=b",
        "/webhooks?limit=5",
    ] {
        server.get(known).await.expect(200);
    }
    // An empty filter would match nothing: it is refused, not answered with an empty list.
    for (path, empty) in [
        ("/license_keys?customer_id=", "customer_id"),
        (
            "/license_key_instances?license_key_id=&page_size=5",
            "license_key_id",
        ),
        ("/customers?email", "email"),
    ] {
        let reply = server.get(path).await;
        let message = reply.expect(400).message();
        assert!(
            message.contains(&format!("`{empty}` is empty")),
            "{path}: {message}"
        );
    }
    // An offset's `+` sent unencoded arrives as a space: the refusal says so.
    for path in [
        "/license_quantity?accountId=a&licenseId=b&at=2024-03-01T00:00:00+0000",
        "/license_keys?created_at_gte=2024-03-01T00:00:00+01:00",
    ] {
        let reply = server.get(path).await;
        assert!(reply.expect(400).message().contains("`%2B`"), "{path}");
    }
    server
        .get("/license_quantity?accountId=a&licenseId=b&at=2024-03-01T00:00:00%2B0000")
        .await
        .expect(200);
    // Bytes that are not UTF-8 once decoded are refused, not read as U+FFFD.
    for path in [
        "/license_keys?customer_id=%FF",
        "/license_updates?account_id=%C3",
    ] {
        let reply = server.get(path).await;
        assert!(reply.expect(400).message().contains("UTF-8"), "{path}");
    }
}

async fn bad_input_is_400_naming_the_field(server: TestServer) {
    let cases = [
        ("/customers", json!({"email": "a@b.c"}), "name"),
        (
            "/customers",
            json!({"email": "a@b.c", "name": "x".repeat(201)}),
            "name",
        ),
        (
            "/customers",
            json!({"email": "a@b.c", "name": "A", "metadata": {"k": 1}}),
            "metadata",
        ),
        (
            "/products",
            json!({"name": "P", "license_key_activations_limit": 2_000_000}),
            "license_key_activations_limit",
        ),
        ("/products", json!({"name": "P", "surprise": 1}), "surprise"),
        (
            "/license_keys",
            json!({"customer_id": "cus_x"}),
            "product_id",
        ),
        (
            "/license_keys",
            json!({"customer_id": "cus_x", "product_id": "pdt_x", "expires_at": "soon"}),
            "expires_at",
        ),
        (
            "/license_keys",
            json!({"customer_id": "cus_x", "product_id": "pdt_x", "key": ""}),
            "key",
        ),
    ];
    for (path, body, field) in cases {
        let reply = server.post(path, body.clone()).await;
        reply.expect(400);
        assert_eq!(reply.json["code"], "BAD_REQUEST");
        assert!(
            reply.message().contains(field),
            "{path} {body}: {}",
            reply.text
        );
    }
    for (action, body, field) in [
        ("activate", json!({"license_key": "K"}), "name"),
        (
            "activate",
            json!({"license_key": "K", "name": "x".repeat(256)}),
            "name",
        ),
        (
            "deactivate",
            json!({"license_key": "K"}),
            "license_key_instance_id",
        ),
        ("validate", json!({"license_key": 5}), "license_key"),
    ] {
        let reply = public(&server, action, body).await;
        assert!(
            reply.expect(400).message().contains(field),
            "{action}: {}",
            reply.text
        );
    }
    assert_eq!(
        server.get("/customers").await.json["items"],
        json!([]),
        "nothing was written"
    );
    assert_eq!(server.get("/products").await.json["items"], json!([]));

    // A path that does not percent-decode to UTF-8 is named as the problem.
    for path in ["/customers/%FF", "/license_keys/lic_%C3"] {
        let reply = server.get(path).await;
        reply.expect(400);
        assert_eq!(reply.json["code"], "BAD_REQUEST");
        assert!(reply.message().contains("UTF-8"), "{path}: {}", reply.text);
    }
}

async fn businesses_are_isolated(server: TestServer) {
    let (key, instance) = issued_and_activated(&server).await;

    let other = server.new_key("beta", false).await;
    let get = |path: String| {
        let other = other.clone();
        let server = &server;
        async move { server.call(Method::GET, &path, &other, None).await }
    };
    for path in [
        format!("/license_keys/{}", key.json["id"].as_str().unwrap()),
        format!("/customers/{}", key.json["customer_id"].as_str().unwrap()),
        format!("/products/{}", key.json["product_id"].as_str().unwrap()),
        format!("/license_key_instances/{instance}"),
    ] {
        get(path.clone()).await.expect(404);
    }
    for path in [
        "/license_keys",
        "/customers",
        "/products",
        "/license_key_instances",
    ] {
        assert_eq!(
            get(path.to_owned()).await.expect(200).json["items"],
            json!([]),
            "{path}"
        );
    }
    let patched = server
        .call(
            Method::PATCH,
            &format!("/license_keys/{}", key.json["id"].as_str().unwrap()),
            &other,
            Some(json!({"disabled": true})),
        )
        .await;
    patched.expect(404);
    server
        .call(
            Method::PATCH,
            &format!("/license_key_instances/{instance}"),
            &other,
            Some(json!({"name": "x"})),
        )
        .await
        .expect(404);
    // Issuing a key to another business's customer and product is refused.
    let foreign = server
        .call(Method::POST, "/license_keys", &other, Some(json!({"customer_id": key.json["customer_id"], "product_id": key.json["product_id"]})))
        .await;
    foreign.expect(404);
}

async fn read_only_keys_cannot_write(server: TestServer) {
    let key = issue(&server, json!({}), json!({})).await;
    let reader = server.new_key("alpha", true).await;
    let writes = [
        (
            Method::POST,
            "/customers".to_owned(),
            json!({"email": "a@b.c", "name": "A"}),
        ),
        (Method::POST, "/products".to_owned(), json!({"name": "P"})),
        (
            Method::PATCH,
            format!("/products/{}", key.json["product_id"].as_str().unwrap()),
            json!({"name": "Q"}),
        ),
        (
            Method::POST,
            "/license_keys".to_owned(),
            json!({"customer_id": key.json["customer_id"], "product_id": key.json["product_id"]}),
        ),
        (
            Method::PATCH,
            format!("/license_keys/{}", key.json["id"].as_str().unwrap()),
            json!({"disabled": true}),
        ),
        (
            Method::PATCH,
            "/license_key_instances/lki_x".to_owned(),
            json!({"name": "x"}),
        ),
    ];
    for (method, path, body) in writes {
        let reply = server
            .call(method.clone(), &path, &reader, Some(body))
            .await;
        assert_eq!(
            reply.expect(403).json["code"],
            "FORBIDDEN",
            "{method} {path}"
        );
    }
    server
        .call(Method::GET, "/license_keys", &reader, None)
        .await
        .expect(200);
    server
        .call(Method::GET, "/license_keys", "", None)
        .await
        .expect(401);
    assert_eq!(
        server
            .get(&format!(
                "/license_keys/{}",
                key.json["id"].as_str().unwrap()
            ))
            .await
            .json["status"],
        "active"
    );
}

async fn concurrent_activations_never_exceed_the_limit(server: TestServer) {
    let key = issue(
        &server,
        json!({"license_key_activations_limit": 7}),
        json!({}),
    )
    .await;
    let text = key.json["key"].as_str().unwrap().to_owned();
    let server = Arc::new(server);
    let replies = common::concurrently(50, |i| {
        let server = server.clone();
        let text = text.clone();
        async move {
            public(
                &server,
                "activate",
                json!({"license_key": text, "name": format!("m{i}")}),
            )
            .await
        }
    })
    .await;
    let statuses: Vec<u16> = replies.iter().map(|r| r.status.as_u16()).collect();
    common::assert_admitted_up_to_the_limit(&statuses, 7);
    let fetched = server
        .get(&format!(
            "/license_keys/{}",
            key.json["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(fetched.json["instances_count"], json!(7));
    let listed = listed_instance_ids(&server, key.json["id"].as_str().unwrap()).await;
    let answered: HashSet<String> = (replies.iter())
        .filter(|r| r.status.as_u16() == 201)
        .map(|r| r.json["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(listed.len(), 7);
    assert_eq!(
        answered, listed,
        "each admitted activation has its own instance"
    );
    for refused in replies.iter().filter(|r| r.status.as_u16() == 422) {
        assert_eq!(refused.json["code"], "LICENSE_KEY_LIMIT_REACHED");
    }
}

/// Machines (fingerprints) activating again while others race for the last seats: a
/// machine's activations all answer its one instance, and take one seat between them.
async fn concurrent_activations_of_machines_take_one_seat_each(server: TestServer) {
    let key = issue(
        &server,
        json!({"license_key_activations_limit": 6}),
        json!({}),
    )
    .await;
    let text = key.json["key"].as_str().unwrap().to_owned();
    let known = public(
        &server,
        "activate",
        json!({"license_key": text, "name": "m0", "fingerprint": "machine-0"}),
    )
    .await;
    let known = known.expect(201).json["id"].as_str().unwrap().to_owned();
    let server = Arc::new(server);
    // Every third request is one of four machines (machine-0 already activated); the
    // rest have no fingerprint.
    let replies = common::concurrently(48, |i| {
        let server = server.clone();
        let text = text.clone();
        async move {
            let mut body = json!({"license_key": text, "name": format!("m{i}")});
            if i % 3 == 0 {
                body["fingerprint"] = json!(format!("machine-{}", i / 3 % 4));
            }
            public(&server, "activate", body).await
        }
    })
    .await;
    let mut machines: std::collections::HashMap<String, HashSet<String>> = Default::default();
    let mut admitted = HashSet::new();
    for (i, reply) in replies.iter().enumerate() {
        match reply.status.as_u16() {
            201 => {
                let id = reply.json["id"].as_str().unwrap().to_owned();
                if i % 3 == 0 {
                    let machine = format!("machine-{}", i / 3 % 4);
                    assert_eq!(reply.json["fingerprint"], json!(machine));
                    machines.entry(machine).or_default().insert(id.clone());
                    admitted.insert(id);
                } else {
                    assert!(admitted.insert(id), "an instance answered twice");
                }
            }
            422 => assert_eq!(reply.json["code"], "LICENSE_KEY_LIMIT_REACHED"),
            status => panic!("{status}: {:?}", reply.json),
        }
    }
    for (machine, ids) in &machines {
        assert_eq!(ids.len(), 1, "{machine} got one instance: {ids:?}");
    }
    assert_eq!(
        machines["machine-0"],
        HashSet::from([known.clone()]),
        "a machine already activated gets its instance back"
    );
    admitted.insert(known);
    let path = format!("/license_keys/{}", key.json["id"].as_str().unwrap());
    let fetched = server.get(&path).await;
    assert_eq!(fetched.json["instances_count"], json!(6));
    let listed = listed_instance_ids(&server, key.json["id"].as_str().unwrap()).await;
    assert_eq!(listed, admitted);
}

async fn lowering_the_limit_while_activations_race_keeps_the_invariant(server: TestServer) {
    let key = issue(
        &server,
        json!({"license_key_activations_limit": 20}),
        json!({}),
    )
    .await;
    let text = key.json["key"].as_str().unwrap().to_owned();
    let path = format!("/license_keys/{}", key.json["id"].as_str().unwrap());
    let server = Arc::new(server);
    let replies = common::concurrently(30, |i| {
        let server = server.clone();
        let text = text.clone();
        let path = path.clone();
        async move {
            if i % 5 == 0 {
                server
                    .patch(&path, json!({"activations_limit": 4 + i / 5}))
                    .await
            } else {
                public(
                    &server,
                    "activate",
                    json!({"license_key": text, "name": format!("m{i}")}),
                )
                .await
            }
        }
    })
    .await;
    for reply in replies {
        let status = reply.status.as_u16();
        assert!([200, 201, 422].contains(&status), "{status}");
    }
    let fetched = server.get(&path).await;
    let count = fetched.json["instances_count"].as_u64().unwrap();
    let limit = fetched.json["activations_limit"].as_u64().unwrap();
    assert!(count <= limit, "{count} instances over a limit of {limit}");
    let listed = listed_instance_ids(&server, fetched.json["id"].as_str().unwrap()).await;
    assert_eq!(listed.len() as u64, count);
}

async fn inputs_the_fuzzer_found_are_refused(server: TestServer) {
    let key = issue(
        &server,
        json!({"license_key_activations_limit": 2}),
        json!({"expires_at": "2099-01-01T00:00:00Z"}),
    )
    .await;
    let path = format!("/license_keys/{}", key.json["id"].as_str().unwrap());
    // serde reads a struct from an array of its fields: [null, null] must not clear them.
    let array = server.patch(&path, json!([null, null])).await;
    assert!(array.expect(400).message().contains("object"));
    assert_eq!(server.get(&path).await.json, key.json);
    server
        .post("/customers", json!(["a@b.c", "A"]))
        .await
        .expect(400);

    let deep = server.get("/license_keys?page_number=2147483648").await;
    assert!(deep.expect(422).message().contains("page_number"));
    server
        .get("/license_keys?page_number=100000")
        .await
        .expect(200);

    // PostgreSQL cannot hold or compare NUL in text.
    let nul = server.get("/license_keys?customer_id=cus%00x").await;
    assert!(nul.expect(400).message().contains("NUL"));
    server.get("/customers/cus_%00").await.expect(400);
    let value = server
        .post(
            "/customers",
            json!({"email": "a@b.c", "name": "A", "metadata": {"k": "a\u{0}b"}}),
        )
        .await;
    assert_eq!(
        value.expect(400).message(),
        "invalid `metadata`: the value of `k` must not contain NUL characters"
    );

    // Metadata over its limits is refused on every route that takes it.
    let product = server.post("/products", json!({"name": "P"})).await;
    let path = format!(
        "/products/{}",
        product.expect(201).json["product_id"].as_str().unwrap()
    );
    let long_key = server
        .patch(&path, json!({"metadata": {"k".repeat(101): "v"}}))
        .await;
    assert_eq!(
        long_key.expect(400).message(),
        format!(
            "invalid `metadata`: key `{}` must be at most 100 characters, got 101",
            "k".repeat(40)
        )
    );
    let long_value = server
        .post(
            "/products",
            json!({"name": "P", "metadata": {"k": "x".repeat(501)}}),
        )
        .await;
    assert_eq!(
        long_value.expect(400).message(),
        "invalid `metadata`: the value of `k` must be at most 500 characters"
    );
}

/// A rename waiting for its instance's lock holds up no validation: a change runs on a
/// connection of its own, not on the connections that reads share.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_change_waiting_for_a_lock_holds_up_no_read_on_postgres() {
    let settings = licensed::http::ServerSettings {
        request_timeout: std::time::Duration::from_secs(2),
        ..Default::default()
    };
    let Some(server) = TestServer::start_with(common::Backend::Postgres, settings).await else {
        return;
    };
    let (key, instance) = issued_and_activated(&server).await;
    let text = key.json["key"].as_str().unwrap().to_owned();

    let holder = server.database.connect().await;
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM license_key_instances WHERE id = '{instance}' FOR UPDATE"
        ))
        .await
        .unwrap();
    let rename = tokio::spawn({
        let (client, url, key) = (
            server.client.clone(),
            server.url.clone(),
            server.key.clone(),
        );
        async move {
            let response = client
                .patch(format!("{url}/license_key_instances/{instance}"))
                .bearer_auth(key)
                .json(&json!({"name": "b"}))
                .send()
                .await
                .unwrap();
            response.status().as_u16()
        }
    });
    common::until_a_session_waits_for_a_lock(&holder).await;
    // More validations than there are shared connections: each one must answer.
    for _ in 0..4 {
        public(&server, "validate", json!({"license_key": text}))
            .await
            .expect(200);
    }
    holder.batch_execute("COMMIT").await.unwrap();
    assert_eq!(rename.await.unwrap(), 200);
}

/// Activations that arrive while the key's row is locked wait together, and are then
/// made together: each answered as it would be alone, in turn (the limit reached part
/// way through, a machine's second activation answered with its first's instance).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn activations_waiting_for_a_locked_key_are_answered_each_in_turn_on_postgres() {
    let Some(server) = TestServer::start(common::Backend::Postgres).await else {
        return;
    };
    let key = issue(
        &server,
        json!({"license_key_activations_limit": 5}),
        json!({}),
    )
    .await;
    let (id, text) = (
        key.json["id"].as_str().unwrap().to_owned(),
        key.json["key"].as_str().unwrap().to_owned(),
    );
    let holder = server.database.connect().await;
    holder
        .batch_execute(&format!(
            "BEGIN; SELECT 1 FROM license_keys WHERE id = '{id}' FOR UPDATE"
        ))
        .await
        .unwrap();
    let server = Arc::new(server);
    let activate = |i: usize| {
        let (server, text) = (server.clone(), text.clone());
        tokio::spawn(async move {
            let mut body = json!({"license_key": text, "name": format!("m{i}")});
            if i % 4 == 1 {
                body["fingerprint"] = json!("one-machine");
            }
            public(&server, "activate", body).await
        })
    };
    let first = activate(0);
    common::until_a_session_waits_for_a_lock(&holder).await;
    let rest: Vec<_> = (1..16).map(activate).collect();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    holder.batch_execute("COMMIT").await.unwrap();

    let mut replies = vec![first.await.unwrap()];
    for reply in rest {
        replies.push(reply.await.unwrap());
    }
    let mut admitted = HashSet::new();
    let mut machine = HashSet::new();
    for (i, reply) in replies.iter().enumerate() {
        match reply.status.as_u16() {
            201 if i % 4 == 1 => {
                machine.insert(reply.json["id"].as_str().unwrap().to_owned());
            }
            201 => assert!(admitted.insert(reply.json["id"].as_str().unwrap().to_owned())),
            422 => assert_eq!(reply.json["code"], "LICENSE_KEY_LIMIT_REACHED"),
            status => panic!("{status}: {}", reply.text),
        }
    }
    assert!(
        machine.len() <= 1,
        "one instance for the machine: {machine:?}"
    );
    admitted.extend(machine);
    assert_eq!(admitted.len(), 5);
    let fetched = server.get(&format!("/license_keys/{id}")).await;
    assert_eq!(fetched.json["instances_count"], json!(5));
    assert_eq!(listed_instance_ids(&server, &id).await, admitted);
}
