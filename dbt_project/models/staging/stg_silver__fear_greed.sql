-- The Fear & Greed index per UTC day.
select day, value as fear_greed_value, classification as fear_greed_classification
from {{ source('silver', 'fear_greed') }}
