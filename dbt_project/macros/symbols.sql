{#- A symbol's quote and base assets by the trade contract's rule (the longest known quote suffix, var
    quote_assets, longest first), and the CoinGecko id of a base asset (var coin_ids). -#}

{% macro quote_asset(symbol) -%}
    case
    {%- for quote in var('quote_assets') %}
        when {{ symbol }} like '%{{ quote }}' and length({{ symbol }}) > {{ quote | length }} then '{{ quote }}'
    {%- endfor %}
    end
{%- endmacro %}


{% macro base_asset(symbol) -%}
    left({{ symbol }}, length({{ symbol }}) - length({{ quote_asset(symbol) }}))
{%- endmacro %}


{% macro coin_id(base) -%}
    case {{ base }}
    {%- for base_name, coin in var('coin_ids').items() %}
        when '{{ base_name }}' then '{{ coin }}'
    {%- endfor %}
    end
{%- endmacro %}


{% macro usd_quote_rank(quote) -%}
    {#- The preference of a USD-like quote for a coin's USD price (1 is best); null: not a USD quote. -#}
    case {{ quote }}
    {%- for usd in var('usd_quotes') %}
        when '{{ usd }}' then {{ loop.index }}
    {%- endfor %}
    end
{%- endmacro %}
