{#- Generic test: low <= open, close <= high on every row (rows with a null price fail too). -#}
{% test ohlc_bounds(model, open='open', high='high', low='low', close='close') %}
    select *
    from {{ model }}
    where not (
        {{ low }} <= {{ open }} and {{ low }} <= {{ close }}
        and {{ open }} <= {{ high }} and {{ close }} <= {{ high }}
    )
    or {{ low }} is null or {{ high }} is null or {{ open }} is null or {{ close }} is null
{% endtest %}
