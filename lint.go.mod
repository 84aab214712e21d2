module github.com/eventsvc/eventsvc

go 1.26.0
