// Diesel table definitions; kept in step with `migrations/` by hand (the
// migrations are the source of truth, `diesel print-schema` regenerates this).

diesel::table! {
    agencies (id) {
        id -> Int8,
        name -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    locations (id) {
        id -> Int8,
        agency_id -> Int8,
        name -> Text,
        time_zone -> Text,
        created_at -> Timestamptz,
        default_region -> Text,
    }
}

diesel::table! {
    users (id) {
        id -> Int8,
        email -> Text,
        password_hash -> Text,
        role -> Text,
        agency_id -> Nullable<Int8>,
        is_admin -> Bool,
        created_at -> Timestamptz,
        session_generation -> Int4,
        deactivated_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    password_links (id) {
        id -> Int8,
        user_id -> Int8,
        token_sha256 -> Text,
        created_by -> Int8,
        created_at -> Timestamptz,
        expires_at -> Timestamptz,
        ended_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    location_memberships (location_id, user_id) {
        location_id -> Int8,
        user_id -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    login_failures (id) {
        id -> Int8,
        email -> Text,
        attempted_at -> Timestamptz,
        client -> Nullable<Text>,
    }
}

diesel::table! {
    contacts (location_id, id) {
        location_id -> Int8,
        id -> Int8,
        name -> Text,
        phone -> Nullable<Text>,
        email -> Nullable<Text>,
        facebook_id -> Nullable<Text>,
        whatsapp_id -> Nullable<Text>,
        gmb_id -> Nullable<Text>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        dnd_all -> Bool,
        dnd_mask -> Int2,
        dnd_status -> Int2,
        inbound_sms_dnd -> Bool,
        inbound_calls_dnd -> Bool,
    }
}

diesel::table! {
    contact_dnd_reasons (location_id, contact_id, channel, reason) {
        location_id -> Int8,
        contact_id -> Int8,
        channel -> Text,
        reason -> Text,
        kind -> Text,
        address -> Nullable<Text>,
        set_at -> Timestamptz,
        actor_kind -> Text,
        actor_id -> Nullable<Int8>,
        actor_label -> Text,
        source -> Nullable<Text>,
    }
}

diesel::table! {
    address_dnd_reasons (location_id, address, channel, reason) {
        location_id -> Int8,
        address -> Text,
        channel -> Text,
        reason -> Text,
        kind -> Text,
        set_at -> Timestamptz,
        actor_kind -> Text,
        actor_id -> Nullable<Int8>,
        actor_label -> Text,
        source -> Nullable<Text>,
    }
}

diesel::table! {
    address_consent (location_id, address, channel, reason) {
        location_id -> Int8,
        address -> Text,
        channel -> Text,
        last_change_at -> Timestamptz,
        reason -> Text,
    }
}

diesel::table! {
    dnd_history (location_id, id) {
        location_id -> Int8,
        id -> Int8,
        contact_id -> Nullable<Int8>,
        channel -> Nullable<Text>,
        reason -> Nullable<Text>,
        kind -> Nullable<Text>,
        action -> Text,
        actor_kind -> Text,
        actor_id -> Nullable<Int8>,
        actor_label -> Text,
        address -> Nullable<Text>,
        source -> Nullable<Text>,
        at -> Timestamptz,
        event_at -> Nullable<Timestamptz>,
        detail -> Nullable<Text>,
    }
}

diesel::table! {
    integrations (location_id, id) {
        location_id -> Int8,
        id -> Int8,
        channel -> Text,
        provider -> Text,
        status -> Text,
        account -> Nullable<Text>,
        secret -> Nullable<Text>,
        connected_at -> Nullable<Timestamptz>,
        disconnected_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
        verify_token -> Nullable<Text>,
        transport -> Text,
        api_base_url -> Nullable<Text>,
        api_key -> Nullable<Text>,
        sender -> Nullable<Text>,
        last_error -> Nullable<Text>,
        last_error_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    api_keys (location_id, id) {
        location_id -> Int8,
        id -> Int8,
        name -> Text,
        key_sha256 -> Text,
        created_at -> Timestamptz,
        last_used_at -> Nullable<Timestamptz>,
        revoked_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    location_sms_settings (location_id) {
        location_id -> Int8,
        opt_out_keywords -> Array<Text>,
        opt_in_keywords -> Array<Text>,
        help_keywords -> Array<Text>,
        opt_out_reply -> Text,
        opt_in_reply -> Text,
        help_reply -> Text,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    webhook_events (location_id, id) {
        location_id -> Int8,
        id -> Int8,
        provider -> Text,
        kind -> Text,
        event_key -> Text,
        payload -> Text,
        contact_id -> Nullable<Int8>,
        outcome -> Text,
        received_at -> Timestamptz,
    }
}

diesel::table! {
    mailgun_seen_tokens (token) {
        token -> Text,
        seen_at -> Timestamptz,
    }
}

diesel::table! {
    messages (location_id, id) {
        location_id -> Int8,
        id -> Int8,
        contact_id -> Int8,
        channel -> Text,
        direction -> Text,
        body -> Text,
        from_address -> Nullable<Text>,
        to_address -> Nullable<Text>,
        provider_sid -> Nullable<Text>,
        status -> Text,
        error_code -> Nullable<Int4>,
        created_at -> Timestamptz,
        updated_at -> Timestamptz,
        origin -> Nullable<Text>,
        subject -> Nullable<Text>,
        blocked_reasons -> Array<Text>,
        error_message -> Nullable<Text>,
        attempts -> Int4,
        next_attempt_at -> Nullable<Timestamptz>,
        claimed_at -> Nullable<Timestamptz>,
        handed_over_at -> Nullable<Timestamptz>,
        muted -> Bool,
    }
}

diesel::table! {
    optin_requests (location_id, id) {
        location_id -> Int8,
        id -> Int8,
        contact_id -> Int8,
        channel -> Text,
        address -> Text,
        relationship_numbers -> Array<Text>,
        recording_url -> Text,
        opted_in_on -> Date,
        note -> Text,
        requested_by -> Int8,
        requested_by_label -> Text,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    optin_decisions (location_id, request_id) {
        location_id -> Int8,
        request_id -> Int8,
        decision -> Text,
        note -> Text,
        decided_by -> Int8,
        decided_by_label -> Text,
        decided_at -> Timestamptz,
    }
}

diesel::table! {
    optin_open_requests (location_id, request_id) {
        location_id -> Int8,
        request_id -> Int8,
        contact_id -> Int8,
        channel -> Text,
    }
}

diesel::table! {
    imports (location_id, id) {
        location_id -> Int8,
        id -> Int8,
        kind -> Text,
        channel -> Nullable<Text>,
        file_name -> Text,
        file -> Nullable<Bytea>,
        actor_kind -> Text,
        actor_id -> Nullable<Int8>,
        actor_label -> Text,
        state -> Text,
        rows_total -> Int4,
        rows_done -> Int4,
        created -> Int4,
        updated -> Int4,
        unchanged -> Int4,
        errors -> Text,
        failure -> Nullable<Text>,
        created_at -> Timestamptz,
        finished_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    location_voice_settings (location_id) {
        location_id -> Int8,
        forward_to -> Nullable<Text>,
        message -> Text,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    webhook_subscriptions (location_id, id) {
        location_id -> Int8,
        id -> Int8,
        url -> Text,
        secret -> Text,
        created_by -> Text,
        created_at -> Timestamptz,
        deleted_at -> Nullable<Timestamptz>,
    }
}

diesel::table! {
    webhook_deliveries (location_id, id) {
        location_id -> Int8,
        id -> Int8,
        subscription_id -> Int8,
        history_id -> Int8,
        order_key -> Text,
        state -> Text,
        attempts -> Int4,
        next_attempt_at -> Timestamptz,
        last_status -> Nullable<Int4>,
        last_error -> Nullable<Text>,
        delivered_at -> Nullable<Timestamptz>,
        created_at -> Timestamptz,
    }
}

diesel::joinable!(locations -> agencies (agency_id));
diesel::joinable!(location_sms_settings -> locations (location_id));
diesel::joinable!(users -> agencies (agency_id));
diesel::joinable!(location_memberships -> locations (location_id));
diesel::joinable!(location_memberships -> users (user_id));
diesel::joinable!(contacts -> locations (location_id));
diesel::joinable!(integrations -> locations (location_id));
diesel::joinable!(api_keys -> locations (location_id));

diesel::allow_tables_to_appear_in_same_query!(
    agencies,
    locations,
    users,
    location_memberships,
    login_failures,
    contacts,
    contact_dnd_reasons,
    address_dnd_reasons,
    address_consent,
    dnd_history,
    integrations,
    api_keys,
    location_sms_settings,
    webhook_events,
    mailgun_seen_tokens,
    messages,
    optin_requests,
    optin_decisions,
    optin_open_requests,
    password_links,
    imports,
    location_voice_settings,
    webhook_subscriptions,
    webhook_deliveries,
);
