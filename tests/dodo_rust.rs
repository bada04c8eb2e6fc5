//! Compatibility with Dodo's official Rust crate, `dodopayments`: the crate drives a
//! running server on every backend, pointed at it with
//! `ClientConfig::new(url).with_api_key(key)`, and the tests assert what it returns.

mod common;

use common::TestServer;
use dodopayments::models::{
    CustomersCreateParams, LicenseKey, LicenseKeyInstancesUpdateParams, LicenseKeyStatus,
    LicenseKeysCreateParams, LicenseKeysUpdateParams, LicensesActivateParams,
    LicensesDeactivateParams, LicensesValidateParams, Price, ProductsCreateParams,
    ProductsUpdateParams, TaxCategory,
};
use dodopayments::{Client, ClientConfig, Error};
use futures::{Stream, StreamExt};
use serde_json::{Value, json};

backend_tests!(
    customers_and_products,
    license_keys_are_created_read_changed_and_listed,
    auto_pagination_sees_each_key_once,
    activation_validation_and_instances,
    errors_arrive_with_their_status,
);

/// The crate pointed at the server. No retries: a test must see the first answer.
fn client(server: &TestServer, key: &str) -> Client {
    Client::new(
        ClientConfig::new(server.url.clone())
            .with_api_key(key)
            .with_max_retries(0),
    )
    .expect("client")
}

/// The status of the API error `result` holds.
#[track_caller]
fn status<T: std::fmt::Debug>(result: dodopayments::Result<T>) -> (u16, String) {
    match result {
        Err(Error::Api { status, message }) => (status, message),
        other => panic!("expected an API error, got {other:?}"),
    }
}

async fn collect<T>(stream: impl Stream<Item = dodopayments::Result<T>>) -> Vec<T> {
    let items: Vec<_> = Box::pin(stream).collect().await;
    items.into_iter().map(|item| item.expect("item")).collect()
}

fn price_of(price: &Price) -> &Value {
    match price {
        Price::Variant0(v) | Price::Variant1(v) | Price::Variant2(v) => v,
    }
}

/// A customer and a product whose keys allow `limit` activations; their ids.
async fn customer_and_product(api: &Client, limit: i64) -> (String, String) {
    let customer = api
        .customers()
        .create()
        .body(CustomersCreateParams {
            email: Some("ada@example.com".into()),
            name: Some("Ada Lovelace".into()),
            ..Default::default()
        })
        .await
        .expect("customer");
    let product = api
        .products()
        .create()
        .body(ProductsCreateParams {
            name: Some("Editor Pro".into()),
            price: Some(Box::new(Price::Variant0(
                json!({"type": "one_time_price", "currency": "USD", "price": 4900}),
            ))),
            tax_category: Some(Box::new(TaxCategory::Saas)),
            license_key_activations_limit: Some(limit),
            ..Default::default()
        })
        .await
        .expect("product");
    (customer.customer_id, product.product_id)
}

async fn import(api: &Client, customer_id: &str, product_id: &str, key: &str) -> LicenseKey {
    api.license_keys()
        .create()
        .body(LicenseKeysCreateParams {
            customer_id: Some(customer_id.into()),
            product_id: Some(product_id.into()),
            key: Some(key.into()),
            ..Default::default()
        })
        .await
        .expect("license key")
}

async fn customers_and_products(server: TestServer) {
    let api = client(&server, &server.key);
    let customer = api
        .customers()
        .create()
        .body(CustomersCreateParams {
            email: Some("ada@example.com".into()),
            name: Some("Ada Lovelace".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(customer.customer_id.starts_with("cus_"));
    let fetched = api
        .customers()
        .retrieve()
        .customer_id(&customer.customer_id)
        .await
        .unwrap();
    assert_eq!(fetched.email, "ada@example.com");
    let listed = api
        .customers()
        .list()
        .query(json!({"email": "ada@example.com"}))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 1);

    // Created with Dodo's price and tax category, decoded strictly by the crate.
    let created = api
        .products()
        .create()
        .body(ProductsCreateParams {
            name: Some("Editor Pro".into()),
            price: Some(Box::new(Price::Variant1(json!({
                "type": "recurring_price", "currency": "EUR", "price": 900,
                "payment_frequency_count": 1, "payment_frequency_interval": "Month",
                "subscription_period_count": 20, "subscription_period_interval": "Year"
            })))),
            tax_category: Some(Box::new(TaxCategory::DigitalProducts)),
            license_key_enabled: Some(true),
            license_key_activations_limit: Some(3),
            addons: Some(vec!["adn_1".into()]),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(created.product_id.starts_with("pdt_"));
    assert_eq!(price_of(&created.price)["price"], 900);
    assert!(created.is_recurring);
    assert!(matches!(
        *created.tax_category,
        TaxCategory::DigitalProducts
    ));
    assert_eq!(created.license_key_activations_limit, Some(3));
    assert_eq!(created.addons.as_deref(), Some(&["adn_1".to_owned()][..]));
    assert!(created.entitlements.is_empty() && created.credit_entitlements.is_empty());

    // Created without them: the defaults, which the crate decodes as well.
    let plain = api
        .products()
        .create()
        .body(ProductsCreateParams {
            name: Some("Plain".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(
        price_of(&plain.price),
        &json!({"type": "one_time_price", "currency": "USD", "price": 0, "discount": null,
            "discount_bps": null, "pay_what_you_want": null, "purchasing_power_parity": null,
            "suggested_price": null, "tax_inclusive": null})
    );
    assert!(matches!(*plain.tax_category, TaxCategory::Saas));
    assert!(!plain.is_recurring);

    api.products()
        .update()
        .id(&created.product_id)
        .body(ProductsUpdateParams {
            description: Some("Monthly".into()),
            tax_category: Some(Box::new(TaxCategory::Edtech)),
            ..Default::default()
        })
        .await
        .unwrap();
    let updated = api
        .products()
        .retrieve()
        .id(&created.product_id)
        .await
        .unwrap();
    assert_eq!(updated.description.as_deref(), Some("Monthly"));
    assert!(matches!(*updated.tax_category, TaxCategory::Edtech));
    assert_eq!(price_of(&updated.price)["price"], 900, "unchanged");

    let first = api
        .products()
        .list()
        .query(json!({"page_size": 1}))
        .await
        .unwrap();
    let products = collect(first.into_stream()).await;
    let ids: Vec<_> = products.iter().map(|p| p.product_id.as_str()).collect();
    assert_eq!(
        ids,
        [created.product_id.as_str(), plain.product_id.as_str()]
    );
    assert_eq!(products[0].price, Some(900));
    assert!(matches!(
        products[0].currency.as_deref(),
        Some(dodopayments::models::Currency::Eur)
    ));
    assert!(products[0].is_recurring);
}

async fn license_keys_are_created_read_changed_and_listed(server: TestServer) {
    let api = client(&server, &server.key);
    let (customer_id, product_id) = customer_and_product(&api, 2).await;
    let generated = api
        .license_keys()
        .create()
        .body(LicenseKeysCreateParams {
            customer_id: Some(customer_id.clone()),
            product_id: Some(product_id.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(generated.id.starts_with("lic_"));
    assert_eq!(generated.source, "manual");
    assert_eq!(generated.activations_limit, Some(2));
    assert!(matches!(*generated.status, LicenseKeyStatus::Active));
    let imported = import(&api, &customer_id, &product_id, "IMPORTED-1").await;
    assert_eq!(imported.source, "import");
    assert_eq!(
        api.license_keys()
            .retrieve()
            .id(&imported.id)
            .await
            .unwrap()
            .key,
        "IMPORTED-1"
    );

    let updated = api
        .license_keys()
        .update()
        .id(&imported.id)
        .body(LicenseKeysUpdateParams {
            activations_limit: Some(5),
            expires_at: Some("2099-01-02T03:04:05Z".into()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(updated.activations_limit, Some(5));
    assert_eq!(updated.expires_at.as_deref(), Some("2099-01-02T03:04:05Z"));
    // The crate's Option fields leave out None, so it cannot send the `null` that clears a
    // limit: that request goes raw through the crate's own request builder.
    let cleared = api
        .send(
            api.request(
                reqwest::Method::PATCH,
                &format!("/license_keys/{}", imported.id),
            )
            .json(&json!({"activations_limit": null})),
        )
        .await
        .unwrap();
    assert_eq!(cleared.status(), 200);
    let cleared: LicenseKey = cleared.json().await.unwrap();
    assert_eq!(cleared.activations_limit, None);
    assert!(cleared.expires_at.is_some(), "only the named field changes");
    let disabled = api
        .license_keys()
        .update()
        .id(&generated.id)
        .body(LicenseKeysUpdateParams {
            disabled: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(matches!(*disabled.status, LicenseKeyStatus::Disabled));

    let keys = |query: Value| {
        let api = api.clone();
        async move {
            let page = api.license_keys().list().query(query).await.unwrap();
            page.items.into_iter().map(|k| k.id).collect::<Vec<_>>()
        }
    };
    assert_eq!(
        keys(json!({"customer_id": customer_id})).await,
        [generated.id.as_str(), imported.id.as_str()]
    );
    assert_eq!(
        keys(json!({"status": "active"})).await,
        [imported.id.as_str()]
    );
    assert_eq!(
        keys(json!({"status": "disabled", "product_id": product_id})).await,
        [generated.id.as_str()]
    );
    assert_eq!(
        keys(json!({"source": "import"})).await,
        [imported.id.as_str()]
    );
    assert!(
        keys(json!({"created_at_gte": "2099-01-01T00:00:00Z"}))
            .await
            .is_empty()
    );
    // Pages count from 0 for this crate, as in Dodo's API reference.
    assert_eq!(
        keys(json!({"page_size": 1, "page_number": 1})).await,
        [imported.id.as_str()]
    );
}

async fn auto_pagination_sees_each_key_once(server: TestServer) {
    let api = client(&server, &server.key);
    let (customer_id, product_id) = customer_and_product(&api, 1).await;
    let mut expected = Vec::new();
    for n in 1..=5 {
        expected.push(
            import(&api, &customer_id, &product_id, &format!("K-{n}"))
                .await
                .key,
        );
    }
    for size in [1, 2, 5, 10] {
        // The first request names no page; the crate then asks for 1, 2, … until a page is empty.
        let first = api
            .license_keys()
            .list()
            .query(json!({"customer_id": customer_id, "page_size": size}))
            .await
            .unwrap();
        let keys: Vec<_> = collect(first.into_stream())
            .await
            .into_iter()
            .map(|k| k.key)
            .collect();
        assert_eq!(keys, expected, "page_size {size}");
    }
    let mut page = api
        .license_keys()
        .list()
        .query(json!({"page_size": 2}))
        .await
        .unwrap();
    let mut pages = vec![page.items.len()];
    while let Some(next) = page.get_next_page().await.unwrap() {
        pages.push(next.items.len());
        page = next;
    }
    assert_eq!(pages, [2, 2, 1, 0]);
}

async fn activation_validation_and_instances(server: TestServer) {
    let api = client(&server, &server.key);
    let (customer_id, product_id) = customer_and_product(&api, 2).await;
    let key = import(&api, &customer_id, &product_id, "ACTIVATE-ME").await;
    let activate = |name: &str| {
        api.licenses().activate().body(LicensesActivateParams {
            license_key: Some("ACTIVATE-ME".into()),
            name: Some(name.into()),
        })
    };
    let laptop = activate("laptop").await.unwrap();
    assert!(laptop.id.starts_with("lki_"));
    assert_eq!(laptop.license_key_id, key.id);
    assert_eq!(laptop.customer.email, "ada@example.com");
    assert_eq!(laptop.product["product_id"], product_id.as_str());
    let desktop = activate("desktop").await.unwrap();
    let (limit, message) = status(activate("third").await);
    assert_eq!(limit, 422);
    assert!(message.contains("LICENSE_KEY_LIMIT_REACHED"), "{message}");

    let first = api
        .license_key_instances()
        .list()
        .query(json!({"license_key_id": key.id, "page_size": 1}))
        .await
        .unwrap();
    let names: Vec<_> = collect(first.into_stream())
        .await
        .into_iter()
        .map(|i| i.name)
        .collect();
    assert_eq!(names, ["laptop", "desktop"]);
    let renamed = api
        .license_key_instances()
        .update()
        .id(&laptop.id)
        .body(LicenseKeyInstancesUpdateParams {
            name: Some("workstation".into()),
        })
        .await
        .unwrap();
    assert_eq!(renamed.name, "workstation");
    assert_eq!(
        api.license_key_instances()
            .retrieve()
            .id(&laptop.id)
            .await
            .unwrap()
            .name,
        "workstation"
    );

    let validate = |instance: Option<&str>| {
        api.licenses().validate().body(LicensesValidateParams {
            license_key: Some("ACTIVATE-ME".into()),
            license_key_instance_id: instance.map(str::to_owned),
        })
    };
    assert!(validate(None).await.unwrap().valid);
    assert!(validate(Some(&desktop.id)).await.unwrap().valid);
    api.licenses()
        .deactivate()
        .body(LicensesDeactivateParams {
            license_key: Some("ACTIVATE-ME".into()),
            license_key_instance_id: Some(desktop.id.clone()),
        })
        .await
        .unwrap();
    assert!(!validate(Some(&desktop.id)).await.unwrap().valid);
    let key = api.license_keys().retrieve().id(&key.id).await.unwrap();
    assert_eq!(key.instances_count, 1);
}

async fn errors_arrive_with_their_status(server: TestServer) {
    let api = client(&server, &server.key);
    let (customer_id, product_id) = customer_and_product(&api, 1).await;
    let key = import(&api, &customer_id, &product_id, "TAKEN").await;

    assert_eq!(
        status(api.license_keys().retrieve().id("lic_missing").await).0,
        404
    );
    assert_eq!(
        status(api.products().retrieve().id("pdt_missing").await).0,
        404
    );
    let (unknown, message) = status(
        api.licenses()
            .validate()
            .body(LicensesValidateParams {
                license_key: Some("NO-SUCH-KEY".into()),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(unknown, 404);
    assert!(message.contains("LICENSE_KEY_NOT_FOUND"), "{message}");

    // The crate retries a 409 unless told not to: with its default retries, the answer
    // still arrives as the first one.
    let retrying = Client::new(ClientConfig::new(server.url.clone()).with_api_key(&server.key))
        .expect("client");
    let started = std::time::Instant::now();
    let duplicate = retrying
        .license_keys()
        .create()
        .body(LicenseKeysCreateParams {
            customer_id: Some(customer_id.clone()),
            product_id: Some(product_id.clone()),
            key: Some("TAKEN".into()),
            ..Default::default()
        })
        .await;
    assert_eq!(status(duplicate).0, 409);
    assert!(
        started.elapsed() < std::time::Duration::from_millis(350),
        "not retried"
    );

    assert_eq!(
        status(client(&server, "lsk_wrong").customers().list().await).0,
        401
    );
    let read_only = server.new_key("alpha", true).await;
    let denied = client(&server, &read_only)
        .license_keys()
        .update()
        .id(&key.id)
        .body(LicenseKeysUpdateParams {
            disabled: Some(true),
            ..Default::default()
        })
        .await;
    assert_eq!(status(denied).0, 403);

    let (bad, message) = status(
        api.customers()
            .create()
            .body(CustomersCreateParams {
                email: Some("not-an-email".into()),
                name: Some("X".into()),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(bad, 400);
    assert!(message.contains("email"), "{message}");
    let (bad, message) = status(
        api.products()
            .create()
            .body(ProductsCreateParams {
                name: Some("X".into()),
                price: Some(Box::new(Price::Variant0(
                    json!({"type": "one_time_price", "currency": "USD", "price": -1}),
                ))),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(bad, 400);
    assert!(message.contains("price.price"), "{message}");

    api.licenses()
        .activate()
        .body(LicensesActivateParams {
            license_key: Some("TAKEN".into()),
            name: Some("one".into()),
        })
        .await
        .unwrap();
    let (below, message) = status(
        api.license_keys()
            .update()
            .id(&key.id)
            .body(LicenseKeysUpdateParams {
                activations_limit: Some(0),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(below, 422);
    assert!(
        message.contains("ACTIVATION_LIMIT_LESS_THAN_CURRENT_AMOUNT"),
        "{message}"
    );

    // The crate's create has no `subscription_id`: that request goes raw through its own
    // request builder. An expiry on such a key is then refused through the crate.
    let subscribed = api
        .send(
            api.request(reqwest::Method::POST, "/license_keys")
                .json(&json!({
                    "customer_id": customer_id, "product_id": product_id,
                    "key": "SUBSCRIBED", "subscription_id": "sub_1"
                })),
        )
        .await
        .unwrap();
    assert_eq!(subscribed.status(), 201);
    let subscribed: LicenseKey = subscribed.json().await.unwrap();
    assert_eq!(subscribed.subscription_id.as_deref(), Some("sub_1"));
    let (refused, message) = status(
        api.license_keys()
            .update()
            .id(&subscribed.id)
            .body(LicenseKeysUpdateParams {
                expires_at: Some("2099-01-01T00:00:00Z".into()),
                ..Default::default()
            })
            .await,
    );
    assert_eq!(refused, 400);
    assert!(
        message.contains("NO_EXPIRY_ON_SUBSCRIPTION_LICENSE_KEYS"),
        "{message}"
    );

    api.license_keys()
        .update()
        .id(&key.id)
        .body(LicenseKeysUpdateParams {
            disabled: Some(true),
            ..Default::default()
        })
        .await
        .unwrap();
    let (inactive, message) = status(
        api.licenses()
            .activate()
            .body(LicensesActivateParams {
                license_key: Some("TAKEN".into()),
                name: Some("again".into()),
            })
            .await,
    );
    assert_eq!(inactive, 403);
    assert!(message.contains("INACTIVE_LICENSE_KEY"), "{message}");
}
